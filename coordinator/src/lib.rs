//! The coordinator daemon, the agent that runs a job, and the wire protocol between them.
//!
//! * [`protocol`] — messages and length-prefixed frames;
//! * [`auth`] — the per-coordinator secret and the challenge-response;
//! * [`daemon`] — the coordinator itself (tokio);
//! * [`client`] — blocking clients: `cairn command` and the agent side;
//! * [`commit`] — building the generation root tree and committing it;
//! * [`agent`] — the agent that owns one job (launch/restore, event loop, checkpoints).

pub mod agent;
pub mod auth;
pub mod client;
pub mod commit;
pub mod daemon;
pub mod protocol;
