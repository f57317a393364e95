//! Writing: [`encode`] turns streams into chunks and node trees, [`packer`] stores the chunks
//! (dedup, compression, this writer's packs, their index rows).

pub(crate) mod encode;
pub(crate) mod lease;
pub(crate) mod packer;

pub use encode::{ReadAtFn, Writer};
pub use packer::PendingIndex;
