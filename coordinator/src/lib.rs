//! The coordinator daemon, the agent that runs a job, and the wire protocol between them.

pub mod agent;
