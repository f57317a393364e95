//! Files without a name the job holds: regular files deleted while open (including
//! `O_TMPFILE` and `tmpfile()` files), memfds, and FIFOs deleted while open — through
//! descriptors, through shared or private mappings, or both.

use serde::{Deserialize, Serialize};

/// What an unnamed file is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnlinkedKind {
    /// A regular file deleted while open (or made with `O_TMPFILE`).
    Regular,
    /// A memfd (`memfd_create`).
    Memfd {
        /// The name given to `memfd_create` (without the `memfd:` prefix).
        name: String,
        /// `F_GET_SEALS` (`F_SEAL_SEAL` alone when sealing was never allowed).
        seals: u32,
        /// On hugetlbfs (`MFD_HUGETLB`) rather than tmpfs.
        hugetlb: bool,
    },
    /// A FIFO deleted while open; its unread bytes are `content`.
    Fifo {
        /// Capacity in bytes (`F_GETPIPE_SZ`).
        capacity: u64,
    },
    /// A working directory removed while a process of the job was in it.
    Directory,
}

/// One file without a name; descriptors refer to it by `id`
/// ([`crate::FdKind::Unlinked`]), mappings by the same id in [`crate::Vma::shm`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlinkedFile {
    /// Inode number at the checkpoint.
    pub id: u64,
    /// What it is.
    pub kind: UnlinkedKind,
    /// The path it had (without " (deleted)"); `/memfd:NAME` for a memfd.
    pub path: String,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (for a FIFO: the number of unread bytes).
    pub size: u64,
    /// `(pid, key)` under which the contents went to [`crate::MemorySink::put_file`]; `None`
    /// when only a shared mapping shows the file (its contents come back with the mapping).
    pub content: Option<(i32, i32)>,
}
