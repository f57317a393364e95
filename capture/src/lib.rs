//! Capturing a running process tree from outside with ptrace into a `ProcessImage`.
