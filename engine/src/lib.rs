//! The checkpoint engine: everything between the command line and the capture, restore and
//! store crates, and nothing of a coordinator.
//!
//! * [`agent`] — the agent that owns one job (launch/restore, event loop, checkpoints);
//! * [`store_io`] — the store adapter: memory and files become streams, and back;
//! * [`layout`] — the one layout of a checkpoint generation (`meta.json`, `agents/<id>/`);
//! * [`recovery`] — the one restart path: newest sound generation, fallback to older ones;
//! * [`solo`] — running a job under a solo agent (launch, restart, run);
//! * [`save_load`] — the "files" generation kind: application files in and out of the store.

pub mod agent;
pub mod layout;
pub mod recovery;
pub mod save_load;
pub mod solo;
pub mod store_io;

pub use agent::AgentError;
pub use cairn_restore::set_adopt_addresses;
