//! The error type of the store.

use std::path::PathBuf;

use crate::id::ChunkId;

/// Everything that can go wrong in the store. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory has no `config.json`.
    #[error("{}: not a cairn store (no config.json)", .0.display())]
    NotAStore(PathBuf),
    /// The directory holds a store's packs and generations but its `config.json` is gone.
    #[error("{}: config.json is missing, but packs/ and generations/ are here: `cairn store repair --store {}` recreates it", .0.display(), .0.display())]
    ConfigLost(PathBuf),
    /// The store directory does not exist.
    #[error("{}: no such directory (not a cairn store)", .0.display())]
    NoSuchStore(PathBuf),
    /// The store was written by a newer cairn.
    #[error("{}: store format version {found} is newer than the supported version {supported}", .path.display())]
    NewerFormat {
        /// Store directory.
        path: PathBuf,
        /// Version found in config.json.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// `init` on a directory that is not empty.
    #[error("{}: already exists and is not an empty directory", .0.display())]
    AlreadyExists(PathBuf),
    /// No generation of this job exists.
    #[error("unknown job {0:?}: it has no generations in this store")]
    UnknownJob(String),
    /// No generation with this id.
    #[error("no generation {0} in this store")]
    UnknownGeneration(u64),
    /// Every generation of the job is damaged or incomplete.
    #[error("no consistent generation of job {job:?}: {reason}")]
    NoConsistentGeneration {
        /// The job.
        job: String,
        /// Why the newest one was rejected.
        reason: String,
    },
    /// A path that does not exist inside a generation's tree.
    #[error("{0:?}: no such entry in the generation")]
    NotFound(String),
    /// A caller passed something the store cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The store's contents are damaged (bad checksum, truncated file, ...).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A chunk that is referenced but present in no pack.
    #[error("chunk {0} is missing from the store")]
    MissingChunk(ChunkId),
    /// The SQLite index is missing, corrupt or unusable.
    #[error("index cairn.db: {0} (rebuild it with `cairn store reindex`)")]
    Index(String),
    /// An operating-system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// True when the error is the caller's (or the store directory's) fault rather than an
    /// internal failure: the CLI maps these to exit code 2.
    pub fn is_bad_input(&self) -> bool {
        match self {
            // A store this user may not read or write is the user's to fix, not cairn's.
            StoreError::Io { source, .. } => source.kind() == std::io::ErrorKind::PermissionDenied,
            _ => true,
        }
    }
}

/// Attach a context message to an `io::Result`.
pub(crate) trait IoContext<T> {
    /// Wrap the error with a lazily built context.
    fn ctx(self, f: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, f: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            context: f(),
            source,
        })
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Index(e.to_string())
    }
}
