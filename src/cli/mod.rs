//! Implementations of the CLI verbs; `main.rs` only parses and dispatches.

pub mod command;
pub mod common;
pub mod coord_opts;
pub mod coordinated;
pub mod coordinator;
pub mod gc_cmds;
pub mod job_common;
pub mod launch;
pub mod render;
pub mod restart;
pub mod run;
pub mod save_load;
pub mod store_cmds;
