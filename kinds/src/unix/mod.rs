//! UNIX sockets and FIFOs between processes of the job: their addresses, connections, options
//! and unread data with message boundaries. The image types are in [`cairn_image::unix`].

pub mod capture;
pub mod restore;

pub use capture::{capture_ipc, show_name, socket, socket_groups};
pub use restore::Ipc;
