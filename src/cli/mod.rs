//! Implementations of the CLI verbs; `main.rs` only parses and dispatches.

pub mod bench_gc;
pub mod bench_store;
pub mod common;
pub mod gc_cmds;
pub mod save_load;
pub mod store_cmds;
