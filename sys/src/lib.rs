//! cairn's system layer: everything that talks to the kernel about another process, and knows
//! nothing of checkpoint images or stores.
//!
//! * [`ptrace`], [`inject`] — seizing threads, registers, and running system calls inside a
//!   stopped thread through a scratch page;
//! * [`freeze`], [`interrupted`], [`asleep`] — stopping every thread of a process, what a
//!   thread stopped inside a system call resumes with, and since when it waited;
//! * [`procfs`] — parsing /proc; [`task`] — credentials, scheduling and affinity of a task; [`ranges`] — byte runs and their arithmetic; [`sock_diag`] — the kernel's socket diagnostics over netlink;
//! * [`uffd`] — userfaultfd; [`pagemap`] — `PAGEMAP_SCAN`;
//! * [`sandbox`] — the job sandbox: namespaces and the tiny init every job runs under;
//!   [`layout`] — the order that rebuilds its processes with their sessions and groups.

#![warn(missing_docs)]

pub mod asleep;
pub mod error;
pub mod freeze;
pub mod inject;
pub mod interrupted;
pub mod layout;
pub mod pagemap;
pub mod procfs;
pub mod ptrace;
pub mod ranges;
pub mod regs;
pub mod sandbox;
pub mod sock_diag;
pub mod task;
pub mod uffd;
pub mod vdso;

pub use error::{io_ctx, last_os, Error, Result};
pub use regs::UserRegs;
pub use sandbox::{ChildSpec, ExitStatus, Sandbox};
