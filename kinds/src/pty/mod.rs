//! Pseudo-terminals the job opened itself (`posix_openpt`, `/dev/ptmx`, a `/dev/pts/N` it
//! opened by name): refused at the checkpoint with a message that says so. Their state (the
//! pair, termios, window size, packet mode, data queued in either direction, a controlling
//! terminal) cannot all be read back without disturbing the program — a line being typed in
//! canonical mode is invisible — so nothing is restored half. Terminals the job inherited as
//! its stdio are re-attached by the restore driver (`FdKind::Stdio`).

pub mod capture;
pub mod restore;
