//! UNIX sockets and FIFOs between processes of the job: their addresses, connections (also
//! those not accepted yet), options and unread data with message boundaries, datagram
//! senders, credentials and descriptors in flight. The image types are in
//! [`cairn_image::unix`].
//!
//! `capture` describes the sockets (`unix_diag`) and refuses what cannot be rebuilt, `peek`
//! reads their queues without consuming them, `queued` decides what the queued messages
//! need; `restore` rebuilds the sockets before the stubs are forked, `dgram` sends queued
//! datagrams again from their senders' addresses, `later` refills the queues that need the
//! job's processes (credentials, descriptors in flight).

pub mod capture;
mod dgram;
mod later;
mod peek;
mod queued;
pub mod restore;

pub use capture::{capture_ipc, show_name, socket, socket_groups};
pub use restore::Ipc;
