//! The end-to-end tests of the `cairn` binary: one binary, one module per area. The helpers
//! they share are in `cairn-testkit`; a test of a heavy or timing-sensitive area holds its
//! [`cairn_testkit::Area`] so that two such areas never run at the same time.

mod agent_failures;
mod coordinated;
mod coordinator_cli;
mod coordinator_spawn;
mod differential;
mod gc_cli;
mod incremental;
mod lazy_restore;
mod run_retention;
mod slurm;
mod stdio;
mod storage;
mod store_cli;

/// The testkit finds the very binary Cargo built for these tests.
#[test]
fn the_testkit_runs_the_cairn_binary_under_test() {
    assert_eq!(
        std::path::Path::new(cairn_testkit::cairn()),
        std::path::Path::new(env!("CARGO_BIN_EXE_cairn"))
    );
}
