//! System V shared memory segments of the job's IPC namespace.

use serde::{Deserialize, Serialize};

/// `shm_perm.mode` bit of a segment marked for removal (IPC_RMID while attached).
pub const SHM_DEST: u32 = 0o1000;

/// One System V shared memory segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysvShm {
    /// shmid (the program may hold it in memory; restore recreates the same one).
    pub id: i32,
    /// Key (IPC_PRIVATE = 0, also for segments marked for removal).
    pub key: i32,
    /// Size in bytes (`shm_segsz`).
    pub size: u64,
    /// Permission bits and flags of `shm_perm.mode` (SHM_DEST included).
    pub mode: u32,
    /// Owner uid and gid inside the job's namespace.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Attachments of the processes of the job.
    pub attachments: Vec<SysvAttach>,
    /// `(0, id)` under which the contents went to [`crate::MemorySink::put_file`].
    pub data: Option<(i32, i32)>,
}

impl SysvShm {
    /// Whether the segment was marked for removal (IPC_RMID while attached).
    pub fn removed(&self) -> bool {
        self.mode & SHM_DEST != 0
    }
}

/// Where a process attached a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysvAttach {
    /// Pid inside the namespace.
    pub pid: i32,
    /// Address of the attachment (offset 0 of the segment).
    pub addr: u64,
    /// Length mapped.
    pub len: u64,
    /// Attached for writing (VmFlags `mw`), otherwise SHM_RDONLY.
    pub write: bool,
    /// Attached with SHM_EXEC (VmFlags `me`).
    pub exec: bool,
}

/// One System V semaphore set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysvSem {
    /// semid (the program may hold it in memory; restore recreates the same one).
    pub id: i32,
    /// Key (IPC_PRIVATE = 0).
    pub key: i32,
    /// Permission bits of `sem_perm.mode`.
    pub mode: u32,
    /// Owner uid inside the job's namespace.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// The value of every semaphore of the set (`GETALL`), in order.
    pub values: Vec<u16>,
    /// The pid (in the job) of the last process that changed each semaphore (`GETPID`), 0 if
    /// none did.
    pub pids: Vec<i32>,
}

/// One System V message queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysvMsgQueue {
    /// msqid (the program may hold it in memory; restore recreates the same one).
    pub id: i32,
    /// Key (IPC_PRIVATE = 0).
    pub key: i32,
    /// Permission bits of `msg_perm.mode`.
    pub mode: u32,
    /// Owner uid inside the job's namespace.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Maximum number of bytes the queue holds (`msg_qbytes`).
    pub qbytes: u64,
    /// The queued messages, oldest first.
    pub messages: Vec<SysvMsg>,
}

/// One queued System V message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysvMsg {
    /// Its type (`mtype`, > 0).
    pub mtype: i64,
    /// Its text.
    pub data: Vec<u8>,
}
