//! How a program ended, and the exit code the agent passes on for it.

use serde::{Deserialize, Serialize};

/// How the job's program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramExit {
    /// It called exit with this status.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl ProgramExit {
    /// The shell convention: the status itself, or 128 + signal number.
    pub fn exit_code(self) -> i32 {
        match self {
            ProgramExit::Code(c) => c & 0xff,
            ProgramExit::Signal(s) => 128 + s,
        }
    }

    /// Decodes a `siginfo_t` from `waitid` (`si_code`, `si_status`).
    pub fn from_waitid(si_code: i32, si_status: i32) -> Self {
        match si_code {
            libc::CLD_EXITED => ProgramExit::Code(si_status),
            _ => ProgramExit::Signal(si_status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(ProgramExit::Code(0).exit_code(), 0);
        assert_eq!(ProgramExit::Code(3).exit_code(), 3);
        assert_eq!(ProgramExit::Code(256 + 7).exit_code(), 7);
        assert_eq!(ProgramExit::Signal(9).exit_code(), 137);
        assert_eq!(
            ProgramExit::from_waitid(libc::CLD_KILLED, 15).exit_code(),
            143
        );
        assert_eq!(
            ProgramExit::from_waitid(libc::CLD_DUMPED, 11).exit_code(),
            139
        );
        assert_eq!(ProgramExit::from_waitid(libc::CLD_EXITED, 5).exit_code(), 5);
    }
}
