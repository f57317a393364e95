//! Pseudo-terminal pairs the job opened itself and holds both sides of (`posix_openpt`,
//! `openpty`, e.g. Open MPI's launcher, which gives every rank a pseudo-terminal as its
//! stdout): the slave's termios and window size, the master's packet mode and lock, and the
//! output waiting at the master are captured, and the pair comes back with the same number.
//! Refused: a slave whose master the job does not hold, input waiting at a slave, other
//! terminals the job opened itself. Terminals the job inherited as its stdio are re-attached
//! by the restore driver (`FdKind::Stdio`). The image type is [`cairn_image::PtyImage`].

pub mod capture;
pub mod restore;
