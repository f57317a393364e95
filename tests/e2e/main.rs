//! The end-to-end tests of the `cairn` binary: one binary, one module per area. The helpers
//! they share are in `cairn-testkit`.
//!
//! The tests run in parallel. Every test of an area that runs programs under cairn (agents,
//! checkpoints, restarts, Slurm jobs, scans of the host's processes) holds its
//! [`cairn_testkit::Area`] (`Area::enter(module_path!())`): tests of one such area run beside
//! each other, never beside another such area's. The CLI tests of the store, gc and
//! coordinator (`store_cli`, `gc_cli`, `coordinator_cli`) run no program under cairn and run
//! beside anything; `coordinator_spawn` changes the process environment and so runs in a
//! process of its own.

mod agent_failures;
mod architecture;
mod cli_robustness;
mod conformance;
mod coordinated;
mod coordinator_cli;
mod coordinator_spawn;
mod damage;
mod differential;
mod event_loops;
mod full_disk;
mod gc_cli;
mod incremental;
mod inet;
mod job_array;
mod lazy_restore;
mod memory_sharing;
mod mpi;
mod multinode;
mod process_tree;
mod run_retention;
mod runtimes;
mod slurm;
mod snapshot;
mod stdio;
mod storage;
mod store_cli;
mod unix_sockets;

/// The testkit finds the very binary Cargo built for these tests.
#[test]
fn the_testkit_runs_the_cairn_binary_under_test() {
    assert_eq!(
        std::path::Path::new(cairn_testkit::cairn()),
        std::path::Path::new(env!("CARGO_BIN_EXE_cairn"))
    );
}
