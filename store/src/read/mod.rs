//! Reading: [`chunk`] locates and reads single chunks, [`extent`] reads runs of neighbouring
//! chunks several at a time, [`generation`] reassembles the streams of one generation.

pub(crate) mod chunk;
pub(crate) mod extent;
pub(crate) mod generation;

pub use extent::ReadStats;
pub use generation::{ChunkSink, GenerationReader};
