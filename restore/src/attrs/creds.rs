//! Credentials of a thread: user and group ids, supplementary groups, the five capability
//! sets and the securebits.
//!
//! The stub starts with the restoring user's credentials (all capabilities: root, or the
//! owner of the job's user namespace). The order below works from there to any credentials
//! a process of that user may hold: groups and group ids, the inheritable set (while the
//! effective set can still widen it), the user ids (keeping the permitted set across the
//! change with PR_SET_KEEPCAPS), the effective set back for the steps that need
//! CAP_SETPCAP, the bounding set, the ambient set, the securebits, and last the final
//! inheritable, permitted and effective sets. Without privilege (a user namespace) nothing
//! beyond the user's own credentials can be given: other ids, other groups or any
//! capability is refused up front.

use super::{differs, At};
use cairn_image::Creds;
use cairn_sys::task::creds_of;
use cairn_sys::{Error, Result};

const PR_CAPBSET_DROP: u64 = 24;
const PR_SET_KEEPCAPS: u64 = 8;
const PR_SET_SECUREBITS: u64 = 28;
const PR_CAP_AMBIENT: u64 = 47;
const PR_CAP_AMBIENT_RAISE: u64 = 2;
const CAP_VERSION_3: u32 = 0x2008_0522;
/// Offset in the scratch memory of the capset header and data.
const CAPS: u64 = 512;

fn capset(at: &At<'_>, what: &str, eff: u64, prm: u64, inh: u64) -> Result<()> {
    let mut b = CAP_VERSION_3.to_le_bytes().to_vec();
    b.extend_from_slice(&0u32.to_le_bytes());
    for (e, p, i) in [
        (eff as u32, prm as u32, inh as u32),
        ((eff >> 32) as u32, (prm >> 32) as u32, (inh >> 32) as u32),
    ] {
        b.extend_from_slice(&e.to_le_bytes());
        b.extend_from_slice(&p.to_le_bytes());
        b.extend_from_slice(&i.to_le_bytes());
    }
    let a = at.put(CAPS, &b)?;
    at.set(what, "capset", libc::SYS_capset, &[a, a + 8])
        .map(drop)
}

fn ids(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Gives the thread `want` and `securebits`; `user_ns`: the restore runs unprivileged.
pub fn apply(at: &At<'_>, want: &Creds, securebits: u32, user_ns: bool) -> Result<()> {
    let now = creds_of(at.pid, at.tid)?;
    if user_ns {
        let refuse = |what: String| {
            Err(Error::Incompatible(format!(
                "{}: {what}; an unprivileged restart cannot give it",
                at.who
            )))
        };
        if want.uid != now.uid || want.gid != now.gid {
            return refuse(format!(
                "ran with uids {} and gids {}, this restart runs with uids {} and gids {}",
                ids(&want.uid),
                ids(&want.gid),
                ids(&now.uid),
                ids(&now.gid)
            ));
        }
        if want.groups != now.groups {
            return refuse(format!(
                "had supplementary groups [{}], this user has [{}]",
                ids(&want.groups),
                ids(&now.groups)
            ));
        }
        if want.cap_prm | want.cap_eff | want.cap_inh | want.cap_amb != 0 {
            return refuse(format!(
                "held capabilities (permitted {:#x}, effective {:#x}, inheritable {:#x}, \
                 ambient {:#x})",
                want.cap_prm, want.cap_eff, want.cap_inh, want.cap_amb
            ));
        }
    }
    if want.cap_bnd & !now.cap_bnd != 0 {
        return Err(Error::Incompatible(format!(
            "{}: its capability bounding set {:#x} has capabilities this restart's {:#x} lacks",
            at.who, want.cap_bnd, now.cap_bnd
        )));
    }
    if want.groups != now.groups {
        let b: Vec<u8> = want.groups.iter().flat_map(|g| g.to_le_bytes()).collect();
        if b.len() > 3000 {
            return Err(Error::Incompatible(format!(
                "{}: more than 750 supplementary groups cannot be restored",
                at.who
            )));
        }
        let a = at.put(CAPS + 64, &b)?;
        at.set(
            &format!("supplementary groups [{}]", ids(&want.groups)),
            "setgroups",
            libc::SYS_setgroups,
            &[want.groups.len() as u64, a],
        )?;
    }
    let [rg, eg, sg, fg] = want.gid.map(u64::from);
    if want.gid != now.gid {
        at.set(
            &format!("gids {}", ids(&want.gid)),
            "setresgid",
            libc::SYS_setresgid,
            &[rg, eg, sg],
        )?;
    }
    // The inheritable set first: widening it needs CAP_SETPCAP or the caps in permitted.
    capset(
        at,
        "the inheritable capabilities",
        now.cap_eff,
        now.cap_prm,
        want.cap_inh,
    )?;
    let [ru, eu, su, fu] = want.uid.map(u64::from);
    if want.uid != now.uid {
        at.set(
            "the permitted capabilities across a change of user id",
            "prctl(PR_SET_KEEPCAPS)",
            libc::SYS_prctl,
            &[PR_SET_KEEPCAPS, 1],
        )?;
        at.set(
            &format!("uids {}", ids(&want.uid)),
            "setresuid",
            libc::SYS_setresuid,
            &[ru, eu, su],
        )?;
        // Effective back (a change of euid from 0 clears it) for the steps below.
        capset(at, "capabilities", now.cap_prm, now.cap_prm, want.cap_inh)?;
    }
    // setfsuid/setfsgid return the previous value, never an error: checked below.
    at.inj.raw(libc::SYS_setfsuid, &[fu])?;
    at.inj.raw(libc::SYS_setfsgid, &[fg])?;
    for cap in 0..64u64 {
        if now.cap_bnd & (1 << cap) != 0 && want.cap_bnd & (1 << cap) == 0 {
            at.set(
                &format!("the bounding set {:#x}", want.cap_bnd),
                "prctl(PR_CAPBSET_DROP)",
                libc::SYS_prctl,
                &[PR_CAPBSET_DROP, cap],
            )?;
        }
    }
    for cap in 0..64u64 {
        if want.cap_amb & (1 << cap) != 0 {
            at.set(
                &format!("the ambient capabilities {:#x}", want.cap_amb),
                "prctl(PR_CAP_AMBIENT_RAISE)",
                libc::SYS_prctl,
                &[PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0],
            )?;
        }
    }
    // Also after PR_SET_KEEPCAPS, which set one of them.
    if securebits != 0 || want.uid != now.uid {
        at.set(
            &format!("securebits {securebits:#x}"),
            "prctl(PR_SET_SECUREBITS)",
            libc::SYS_prctl,
            &[PR_SET_SECUREBITS, u64::from(securebits)],
        )?;
    }
    capset(
        at,
        &format!(
            "capabilities (permitted {:#x}, effective {:#x}, inheritable {:#x})",
            want.cap_prm, want.cap_eff, want.cap_inh
        ),
        want.cap_eff,
        want.cap_prm,
        want.cap_inh,
    )?;
    let got = creds_of(at.pid, at.tid)?;
    differs(&at.who, "the credentials", want, &got)
}
