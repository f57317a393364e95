//! The error type of the gc crate.

use cairn_store::StoreError;

/// Everything prune and gc can fail with. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// An error of the store (I/O, damaged data, index).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A policy that keeps nothing was given (a mistake restic also refuses).
    #[error("no retention rule given: pass at least one of --keep-last, --keep-within, --keep-hourly, --keep-daily")]
    EmptyPolicy,
    /// A bad option value.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl GcError {
    /// True when the error is the caller's fault (bad option, bad store): exit code 2.
    pub fn is_bad_input(&self) -> bool {
        match self {
            GcError::Store(e) => e.is_bad_input(),
            GcError::EmptyPolicy | GcError::InvalidOption(_) => true,
        }
    }
}
