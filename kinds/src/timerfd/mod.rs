//! Timers read through descriptors (`timerfd_create(2)`).
//!
//! At a checkpoint, the agent takes a copy of the descriptor and asks `timerfd_gettime` (the
//! time left, exact even for a periodic timer whose expirations were not read yet), then
//! reads the clock, the `timerfd_settime` flags and the unread expirations (`ticks`) from
//! fdinfo. An absolute timer's expiry is the job's clock then plus the time left.
//!
//! At restore, the restoring process creates the timer (on the same clock, unarmed); the
//! setting is injected into the rebuilt process that holds it, so that an absolute expiry
//! is read on the job's clocks (its time namespace, where monotonic and boot time continue
//! from the checkpoint), and a relative one continues from what was left. The unread
//! expirations are put back with `TFD_IOC_SET_TICKS`. The image type is
//! [`cairn_image::TimerFdImage`].

pub mod capture;
pub mod restore;
