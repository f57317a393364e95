//! Timers read through descriptors (`timerfd_create(2)`) of the job.

use serde::{Deserialize, Serialize};

/// A timerfd: its clock, its setting and the expirations not read yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerFdImage {
    /// Identifies the open file description within the image.
    pub id: u64,
    /// The clock (`clockid:` of fdinfo): CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME,
    /// CLOCK_REALTIME_ALARM or CLOCK_BOOTTIME_ALARM.
    pub clock: i32,
    /// `timerfd_settime` flags of the last setting (`settime flags:`): TFD_TIMER_ABSTIME,
    /// TFD_TIMER_CANCEL_ON_SET.
    pub settime_flags: i32,
    /// The next expiry in ns, 0 when the timer is disarmed: with TFD_TIMER_ABSTIME the
    /// absolute time on `clock` as the job saw it (monotonic and boot time continue from the
    /// checkpoint in a restored job), otherwise the time that was left.
    pub value_ns: u64,
    /// The period in ns (0: one-shot).
    pub interval_ns: u64,
    /// Expirations not read yet (`ticks:`).
    pub ticks: u64,
    /// Status flags of the open file: O_RDWR and O_NONBLOCK.
    pub flags: i32,
}
