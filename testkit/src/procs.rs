//! Looking at processes through /proc.

use std::fs;

/// Host PIDs of the children of every thread of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let text = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(
                text.split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// Host PIDs of every descendant of `pid`, nearest first (children, then grandchildren, ...).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut next = children(pid);
    while !next.is_empty() {
        let mut deeper = Vec::new();
        for p in next {
            deeper.extend(children(p));
            out.push(p);
        }
        next = deeper;
    }
    out
}

/// The command name (`/proc/PID/comm`) of `pid`, or an empty string when it is gone.
pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}
