//! Pseudo-terminal pairs whose master and slave are both held inside the job (e.g. the
//! pseudo-terminal Open MPI's launcher gives every rank as its stdout).

use serde::{Deserialize, Serialize};

/// One descriptor of a pseudo-terminal of the job: the master (`/dev/ptmx`) or the slave
/// (`/dev/pts/N`) of pair `index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyImage {
    /// Identifies the open file description within the image: descriptors with the same id
    /// share one.
    pub id: u64,
    /// The pair's number (`/dev/pts/N`); restore gives the pair the same number.
    pub index: u32,
    /// The master side (otherwise the slave).
    pub master: bool,
    /// Status flags of the open file: access mode and O_NONBLOCK.
    pub flags: i32,
    /// The pair's state, on the first master descriptor of each pair only.
    pub pair: Option<PtyPairImage>,
}

/// The state of a pseudo-terminal pair: the slave's terminal attributes and window size,
/// the master's modes, and the bytes the slave wrote that the master has not read yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyPairImage {
    /// `c_iflag`, `c_oflag`, `c_cflag`, `c_lflag` of the slave's termios.
    pub modes: [u32; 4],
    /// `c_line` (the line discipline number in termios).
    pub line: u8,
    /// `c_cc`, the control characters.
    pub cc: Vec<u8>,
    /// Window size: rows, columns, x pixels, y pixels.
    pub winsize: [u16; 4],
    /// Packet mode on the master (`TIOCPKT`).
    pub packet: bool,
    /// The slave is locked (`TIOCSPTLCK`: it cannot be opened by name).
    pub locked: bool,
    /// Output of the slave waiting to be read at the master.
    pub output: Vec<u8>,
}
