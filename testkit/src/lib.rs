//! Helpers shared by cairn's tests (a dev-dependency only, never part of the product): the
//! `cairn` binary and store commands, the test C programs of `tests/programs`, running as the
//! unprivileged test user, scratch directories, jobs under cairn with kill -9 and restart, the
//! differential harness (native run == run under cairn), damaging a store on purpose, bounded
//! waits, network namespaces as the nodes of multi-node tests, a small file system to fill, the areas of tests that must not overlap, and a test run in a process of its own.
//!
//! The crate depends on no cairn crate: a crate's own tests can use it without linking a
//! second copy of the crate under test.

mod area;
mod cli;
mod data;
mod differential;
mod job;
mod nodes;
mod own_process;
mod procs;
mod program;
mod programs;
mod scratch;
mod small_fs;
mod store_damage;
mod users;
mod wait;

pub use area::Area;
pub use cli::{cairn, generations_json, store_cmd, store_ok};
pub use data::{json, rand_bytes};
pub use differential::{differential, run_cycles, Cycles, Rng};
pub use job::{count_lines, Job, COMMITTED, RUNNING, STARTED};
pub use nodes::Nodes;
pub use own_process::in_own_process;
pub use procs::{children, comm, descendants};
pub use program::{run_native, Outcome, Program};
pub use programs::{compile_c, compile_go, compile_java, programs_dir};
pub use scratch::Scratch;
pub use small_fs::SmallFs;
pub use store_damage::{damage_chunk, files_below};
pub use users::{as_user, is_root, open_up, TEST_USER};
pub use wait::wait_for;
