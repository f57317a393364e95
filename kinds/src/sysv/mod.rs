//! System V shared memory segments of the job's IPC namespace: ids, keys, permissions,
//! contents and every process's attachments. The image types are in [`cairn_image::sysv`].

pub mod capture;
pub mod restore;

pub use capture::is_sysv;
pub use restore::{attach, create, finish};
