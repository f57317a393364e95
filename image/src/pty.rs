//! Pseudo-terminals the job opened itself (`posix_openpt`, `/dev/ptmx`).

use serde::{Deserialize, Serialize};

/// One pseudo-terminal pair whose master the job holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyImage {
    /// Its index: the slave is `/dev/pts/INDEX` (restore gives it the same one).
    pub index: u32,
    /// The slave's `struct termios2` (`TCGETS2`, 44 bytes). The master's own settings are
    /// the driver's (raw) and cannot be changed: its termios ioctls act on the slave.
    pub slave_termios: Vec<u8>,
    /// Window size: rows, columns, x pixels, y pixels.
    pub winsize: [u16; 4],
    /// The slave is locked (`TIOCSPTLCK`): it cannot be opened by name.
    pub locked: bool,
    /// Packet mode (`TIOCPKT`) of the master.
    pub packet: bool,
    /// Bytes of a line being typed toward the slave in canonical mode, not yet ended.
    #[serde(default)]
    pub partial: Vec<u8>,
    /// Input the slave had not read: in canonical mode one element per complete line (with
    /// its newline; without one when an EOF character ended it, empty for an EOF character
    /// alone), otherwise one element with the bytes.
    #[serde(default)]
    pub input: Vec<Vec<u8>>,
    /// Output the master had not read.
    #[serde(default)]
    pub output: Vec<u8>,
    /// The session (pid in the job of its leader) whose controlling terminal this is.
    #[serde(default)]
    pub session: Option<i32>,
    /// Its foreground process group (pgid in the job).
    #[serde(default)]
    pub foreground: Option<i32>,
}
