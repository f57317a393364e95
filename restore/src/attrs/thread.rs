//! Per-thread attributes: timer slack, personality, CPU affinity, scheduling (policy,
//! priority, nice, flags), I/O priority, credentials ([`super::creds`]), no_new_privs and the parent-death
//! signal — in this order, because a change of credentials clears the parent-death signal
//! and ends the privilege that a real-time policy or a lower nice value may need.

use super::{creds, differs, At};
use cairn_image::{SchedAttr, ThreadAttrs};
use cairn_sys::task::{self, affinity_of, sched_of, AFFINITY_WORDS};
use cairn_sys::{Error, Result};

const IOPRIO_WHO_PROCESS: u64 = 1;
const PR_SET_PDEATHSIG: u64 = 1;
const PR_SET_TIMERSLACK: u64 = 29;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;
const SCHED_DEADLINE: u32 = 6;
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
const SCHED_FLAG_UTIL_CLAMP: u64 = 0x20 | 0x40;

fn policy_name(p: u32) -> String {
    match p {
        0 => "SCHED_OTHER".into(),
        SCHED_FIFO => "SCHED_FIFO".into(),
        SCHED_RR => "SCHED_RR".into(),
        3 => "SCHED_BATCH".into(),
        5 => "SCHED_IDLE".into(),
        SCHED_DEADLINE => "SCHED_DEADLINE".into(),
        p => format!("policy {p}"),
    }
}

fn cpus(mask: &[u64]) -> String {
    let mut v = Vec::new();
    for (w, &bits) in mask.iter().enumerate() {
        for b in 0..64 {
            if bits & (1 << b) != 0 {
                v.push((w * 64 + b).to_string());
            }
        }
    }
    v.join(",")
}

/// Restores the attributes of one thread, then reads every one back and compares.
pub fn apply(at: &At<'_>, a: &ThreadAttrs, user_ns: bool) -> Result<()> {
    let rt = matches!(a.sched.policy, SCHED_FIFO | SCHED_RR | SCHED_DEADLINE);
    // A real-time thread's slack is 0 and cannot be set (the kernel ignores it for them).
    if !rt {
        at.set(
            "the timer slack",
            "prctl(PR_SET_TIMERSLACK)",
            libc::SYS_prctl,
            &[PR_SET_TIMERSLACK, a.timerslack],
        )?;
    }
    at.set(
        &format!("personality {:#x}", a.personality),
        "personality",
        libc::SYS_personality,
        &[u64::from(a.personality)],
    )?;
    affinity(at, &a.affinity)?;
    sched(at, &a.sched)?;
    // After the nice value, which gives the I/O priority of a thread without one of its own:
    // set only when that is not already what the thread had.
    if task::ioprio_of(at.tid)? != a.ioprio {
        at.set(
            &format!(
                "its I/O priority (class {}, level {})",
                a.ioprio >> 13,
                a.ioprio & 0x1fff
            ),
            "ioprio_set",
            libc::SYS_ioprio_set,
            &[IOPRIO_WHO_PROCESS, 0, u64::from(a.ioprio)],
        )?;
    }
    differs(
        &at.who,
        "the I/O priority",
        &a.ioprio,
        &task::ioprio_of(at.tid)?,
    )?;
    creds::apply(at, &a.creds, a.securebits, user_ns)?;
    if a.no_new_privs {
        at.set(
            "no_new_privs",
            "prctl(PR_SET_NO_NEW_PRIVS)",
            libc::SYS_prctl,
            &[PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0],
        )?;
    }
    at.set(
        "the parent-death signal",
        "prctl(PR_SET_PDEATHSIG)",
        libc::SYS_prctl,
        &[PR_SET_PDEATHSIG, a.pdeathsig as u64],
    )?;
    let got = task::query_task(at.inj, at.pid, at.scratch)?;
    differs(
        &at.who,
        "the parent-death signal",
        &a.pdeathsig,
        &got.pdeathsig,
    )?;
    differs(
        &at.who,
        "the timer slack (ns)",
        &a.timerslack,
        &got.timerslack,
    )?;
    differs(&at.who, "the personality", &a.personality, &got.personality)?;
    differs(&at.who, "no_new_privs", &a.no_new_privs, &got.no_new_privs)?;
    differs(&at.who, "the securebits", &a.securebits, &got.securebits)
}

fn affinity(at: &At<'_>, mask: &[u64]) -> Result<()> {
    if mask.len() > AFFINITY_WORDS {
        return Err(Error::Incompatible(format!(
            "{}: its CPU mask names CPUs above {}",
            at.who,
            AFFINITY_WORDS * 64
        )));
    }
    let mut words = [0u64; AFFINITY_WORDS];
    words[..mask.len()].copy_from_slice(mask);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let addr = at.put(0, &bytes)?;
    at.set(
        &format!("its CPU affinity (CPUs {})", cpus(mask)),
        "sched_setaffinity",
        libc::SYS_sched_setaffinity,
        &[0, bytes.len() as u64, addr],
    )?;
    let got = affinity_of(at.tid)?;
    if got != mask {
        return Err(Error::Incompatible(format!(
            "{}: ran on CPUs {}, but may only run on CPUs {} here (cpuset or machine)",
            at.who,
            cpus(mask),
            cpus(&got)
        )));
    }
    Ok(())
}

fn sched(at: &At<'_>, s: &SchedAttr) -> Result<()> {
    let what = format!(
        "its scheduling ({} priority {}, nice {}{})",
        policy_name(s.policy),
        s.priority,
        s.nice,
        if s.flags & SCHED_FLAG_RESET_ON_FORK != 0 {
            ", SCHED_RESET_ON_FORK"
        } else {
            ""
        }
    );
    // The nice value first: sched_setattr keeps it for a real-time policy, where
    // setpriority still sets it.
    at.set(
        &what,
        "setpriority",
        libc::SYS_setpriority,
        &[libc::PRIO_PROCESS as u64, 0, s.nice as i64 as u64],
    )?;
    let mut flags = s.flags & SCHED_FLAG_RESET_ON_FORK;
    let default_util = sched_of(at.tid)?.util;
    if s.util != default_util {
        flags |= SCHED_FLAG_UTIL_CLAMP;
    }
    let mut b = Vec::with_capacity(56);
    b.extend_from_slice(&56u32.to_le_bytes());
    b.extend_from_slice(&s.policy.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&s.nice.to_le_bytes());
    b.extend_from_slice(&s.priority.to_le_bytes());
    b.extend_from_slice(&s.runtime.to_le_bytes());
    b.extend_from_slice(&s.deadline.to_le_bytes());
    b.extend_from_slice(&s.period.to_le_bytes());
    b.extend_from_slice(&s.util.0.to_le_bytes());
    b.extend_from_slice(&s.util.1.to_le_bytes());
    let addr = at.put(0, &b)?;
    at.set(
        &what,
        "sched_setattr",
        libc::SYS_sched_setattr,
        &[0, addr, 0],
    )?;
    let got = sched_of(at.tid)?;
    differs(&at.who, "the scheduling attributes", s, &got)
}
