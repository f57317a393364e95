//! Pseudo-terminals the job opened itself (`posix_openpt`, `/dev/ptmx`, `openpty`, the slave
//! `/dev/pts/N` opened by name or with `TIOCGPTPEER`): the pair with its index, both sides'
//! termios, the window size, the slave lock and packet mode, every open file description
//! with its access mode and O_NONBLOCK, a line being typed in canonical mode, and the
//! controlling terminal of a session the job leads with its foreground process group. The
//! image type is [`cairn_image::PtyImage`].
//!
//! Refused at the checkpoint: data queued in either direction (complete input lines or
//! bytes the slave has not read, output the master has not read: a terminal offers no way
//! to read them without taking them, and putting them back through the line discipline
//! would not keep their line structure), exclusive mode, a slave whose master the job does
//! not hold, a process other than the session leader having the pair as its controlling
//! terminal. Terminals the job inherited as its stdio are re-attached by the restore driver
//! (`FdKind::Stdio`).

pub mod capture;
pub mod restore;
mod tty;
