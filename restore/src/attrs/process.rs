//! Process-wide attributes: resource limits, dumpable, child subreaper, THP disable,
//! oom_score_adj.

use super::{differs, At};
use cairn_image::ProcessAttrs;
use cairn_sys::task;
use cairn_sys::{Error, Result};

const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_CHILD_SUBREAPER: u64 = 36;
const PR_SET_THP_DISABLE: u64 = 41;
const RLIMIT_NAMES: [&str; 16] = [
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

fn limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

/// Sets every resource limit with `prlimit64(0, …)` inside the process (no privilege needed
/// beyond what the values themselves need: raising a hard limit needs CAP_SYS_RESOURCE).
pub fn rlimits(at: &At<'_>, rlimits: &[(u32, u64, u64)]) -> Result<()> {
    for &(res, cur, max) in rlimits {
        let name = RLIMIT_NAMES.get(res as usize).copied().unwrap_or("a limit");
        let mut b = cur.to_le_bytes().to_vec();
        b.extend_from_slice(&max.to_le_bytes());
        let a = at.put(0, &b)?;
        at.set(
            &format!("{name} (soft {}, hard {})", limit(cur), limit(max)),
            "prlimit64",
            libc::SYS_prlimit64,
            &[0, u64::from(res), a, 0],
        )?;
    }
    let got = task::query_rlimits(at.inj, at.pid, at.scratch)?;
    differs(&at.who, "the resource limits", &rlimits.to_vec(), &got)
}

/// Dumpable, child subreaper and THP disable. Dumpable goes last of all (a non-dumpable
/// process can no longer be written to by an unprivileged tracer): call [`dumpable`] after
/// everything else.
pub fn flags(at: &At<'_>, a: &ProcessAttrs) -> Result<()> {
    if a.child_subreaper {
        at.set(
            "the child subreaper flag",
            "prctl(PR_SET_CHILD_SUBREAPER)",
            libc::SYS_prctl,
            &[PR_SET_CHILD_SUBREAPER, 1],
        )?;
    }
    if a.thp_disable & 1 != 0 {
        at.set(
            "PR_SET_THP_DISABLE",
            "prctl(PR_SET_THP_DISABLE)",
            libc::SYS_prctl,
            &[PR_SET_THP_DISABLE, 1, u64::from(a.thp_disable & !1), 0, 0],
        )?;
    }
    let path = format!("/proc/{}/oom_score_adj", at.pid);
    if task::oom_score_adj_of(at.pid)? != a.oom_score_adj {
        std::fs::write(&path, a.oom_score_adj.to_string()).map_err(|e| {
            Error::Incompatible(format!(
                "{}: oom_score_adj {} cannot be set again ({path}: {e}); the restoring user \
                 may not lower it below its own",
                at.who, a.oom_score_adj
            ))
        })?;
    }
    differs(
        &at.who,
        "oom_score_adj",
        &a.oom_score_adj,
        &task::oom_score_adj_of(at.pid)?,
    )?;
    let got = task::query_process(at.inj, at.pid, at.scratch)?;
    differs(
        &at.who,
        "the child subreaper flag",
        &a.child_subreaper,
        &got.child_subreaper,
    )?;
    differs(
        &at.who,
        "PR_GET_THP_DISABLE",
        &a.thp_disable,
        &got.thp_disable,
    )
}

/// Sets the dumpable flag (0 or 1; 2 only comes from a set-user-id exec and cannot be set).
pub fn dumpable(at: &At<'_>, a: &ProcessAttrs) -> Result<()> {
    if a.dumpable > 1 {
        return Err(Error::Incompatible(format!(
            "{}: dumpable is {} (set by a set-user-id exec), which cannot be set again",
            at.who, a.dumpable
        )));
    }
    at.set(
        "the dumpable flag",
        "prctl(PR_SET_DUMPABLE)",
        libc::SYS_prctl,
        &[PR_SET_DUMPABLE, u64::from(a.dumpable)],
    )?;
    let got = at.inj.call(
        "prctl(PR_GET_DUMPABLE)",
        libc::SYS_prctl,
        &[PR_GET_DUMPABLE],
    )?;
    differs(&at.who, "dumpable", &u64::from(a.dumpable), &got)
}
