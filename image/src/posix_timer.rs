//! POSIX timers (`timer_create(2)`) of the job's processes.

use serde::{Deserialize, Serialize};

/// One POSIX timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosixTimer {
    /// Pid (in the job) of the process that owns it.
    pub pid: i32,
    /// The timer id the program holds (`timer_t`).
    pub id: i32,
    /// The clock, as `timer_create` was given it (CPU-time clocks in the kernel's encoding).
    pub clock: i32,
    /// `sigev_notify` (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, with SIGEV_THREAD_ID).
    pub notify: i32,
    /// `sigev_signo`.
    pub signo: i32,
    /// `sigev_value` (sival_int or sival_ptr).
    pub value: u64,
    /// The thread (tid in the job) that SIGEV_THREAD_ID names, 0 otherwise.
    pub tid: i32,
    /// The interval (`it_interval`: seconds, nanoseconds).
    pub interval: [i64; 2],
    /// The time left to the next expiry (`it_value` of `timer_gettime`), zero when disarmed.
    pub left: [i64; 2],
    /// The next expiry on the timer's clock as the program saw it, for the clocks that continue
    /// across a restart (CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_BOOTTIME_ALARM).
    pub at: Option<[i64; 2]>,
    /// Whether the timer's signal was queued and not yet taken (the signal itself is restored
    /// with the other pending signals).
    pub signal_pending: bool,
}
