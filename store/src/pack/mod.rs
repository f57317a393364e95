//! Pack files, one concern per module: [`format`] is the on-disk layout (header, entries,
//! trailer) and its parsing, [`codec`] the compression policy, [`staging`] the O_DIRECT
//! write path, [`writer`] one pack being written and sealed, [`read`] one chunk read back.
//! Nothing here knows the store handle, the index or generations.

pub(crate) mod codec;
pub(crate) mod format;
pub(crate) mod read;
pub(crate) mod staging;
pub(crate) mod writer;

pub use codec::{compress_lz4_into, decode_payload, looks_incompressible};
pub(crate) use codec::{decode_to, encode_chunk};
pub use format::{check_hash, read_trailer, Codec, PackEntry, PACK_SUFFIX, TMP_PREFIX};
pub(crate) use read::read_into;
pub(crate) use staging::{direct_io_enabled, StagingPool};
pub(crate) use writer::PackWriter;
