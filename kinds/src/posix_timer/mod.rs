//! POSIX timers (`timer_create(2)`), listed by the kernel in `/proc/PID/timers`: captured with
//! their id, clock, sigevent, interval and time left, and created again in the restored
//! process under the same ids (`prctl(PR_TIMER_CREATE_RESTORE_IDS)`). The image type is
//! [`cairn_image::PosixTimer`].

pub mod capture;
pub mod restore;

pub use restore::recreate;
