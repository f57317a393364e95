//! The cairn checkpoint store: content-addressed chunks in pack files, Merkle manifests,
//! generations, and a SQLite index. See docs/store-format.md.
//!
//! Modules, in the order data flows through them: [`Store`] (store.rs) is the handle;
//! `write/` encodes streams into chunks and node trees (`encode`) and stores the chunks
//! (`packer`: dedup, compression, packs, sealing); `pack/` is the pack file: its layout
//! (`format`), codec policy (`codec`), O_DIRECT staging (`staging`), one pack being written
//! (`writer`) and one chunk read back (`read`); `read/` locates and reads chunks and
//! reassembles generations; `check`, `verify` and [`Maintenance`] (gc primitives, with
//! `condemned` markers) work on the shared store directory (`dir`), which knows none of them.
//!
//! ```no_run
//! # fn main() -> Result<(), cairn_store::StoreError> {
//! use cairn_store::{GenerationInfo, InitOptions, Store};
//! let store = Store::init(std::path::Path::new("/tmp/s"), InitOptions::default())?;
//! let mut w = store.writer()?;
//! let data = b"hello".to_vec();
//! let blob = w.put_blob(&data)?;
//! let root = w.put_tree(vec![("hello.txt".into(), blob)])?;
//! let stats = w.finish()?;
//! let info = GenerationInfo { kind: "files".into(), stats, ..Default::default() };
//! let id = store.commit("job1", &root, info)?;
//! let r = store.reader(id)?;
//! assert_eq!(r.read_all(&r.lookup("hello.txt")?)?, data);
//! # Ok(()) }
//! ```

mod check;
mod condemned;
mod config;
mod dir;
mod error;
mod fsutil;
mod generation;
mod id;
mod index;
mod known;
mod maintenance;
mod node;
mod pack;
mod read;
mod store;
#[cfg(test)]
mod tests;
mod verify;
mod write;

pub use check::{CheckLevel, Reach};
pub use condemned::{Condemnation, CONDEMNED_DIR};
pub use config::{Compression, InitOptions, StoreConfig, FORMAT_VERSION};
pub use error::StoreError;
pub use fsutil::now_ms;
pub use generation::{
    check_job_name, Generation, GenerationId, GenerationInfo, ScannedGeneration, Skipped,
    WriteStats, LOST_MANIFEST,
};
pub use id::{is_all_zero, ChunkId, IdBuildHasher, IdHasher, IdMap, IdSet};
pub use index::IndexTotals;
pub use maintenance::{CopyReport, LiveSet, Maintenance, PackSet, PackSummary};
pub use node::{StreamKind, StreamRef};
pub use pack::{compress_lz4_into, looks_incompressible, Codec, PackEntry};
pub use read::{ChunkSink, GenerationReader, ReadStats};
pub use store::{ReindexReport, Store};
pub use verify::{GenerationStatus, PackDamage, VerifyReport};
pub use write::{PendingIndex, ReadAtFn, Writer};
