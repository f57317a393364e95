//! Rebuilding processes from a `ProcessImage` by ptrace-driven syscall injection.
