//! The coordinator daemon, the wire protocol between it and its agents, and the agent's side
//! of that protocol (it drives the engine's agent, `cairn_engine::agent`).
//!
//! * [`protocol`] — messages and length-prefixed frames;
//! * [`auth`] — the per-coordinator secret and the challenge-response;
//! * [`daemon`] — the coordinator itself (tokio);
//! * [`client`] — blocking clients: `cairn command` and the agent side;
//! * [`commit`] — committing one generation from the agents' subtrees;
//! * [`agent_side`] — a registered agent's event loop: checkpoints on the coordinator's word;
//! * [`join`] — joining a computation: the store, registration, running and restarting an agent.

pub mod agent_side;
pub mod auth;
pub mod client;
pub mod commit;
pub mod daemon;
pub mod join;
pub mod protocol;
