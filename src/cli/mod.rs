//! One module per `cairn` verb; each exposes `Args` (clap) and `run`, returning the exit code.

pub mod command;
pub mod coordinator;
pub mod render;

/// Exit code of an internal failure of cairn: 99, or `CAIRN_FAIL_RC` when set (as DMTCP).
pub fn fail_rc() -> i32 {
    std::env::var("CAIRN_FAIL_RC")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(99)
}
