//! Epoll instances: created by the restoring process, their interest lists added inside the
//! rebuilt process holding them (see the module documentation of [`crate::epoll`]).

use crate::scratch::{get, put, with_page};
use crate::shared::{fresh, Made};
use crate::Recreated;
use cairn_image::ProcessTreeImage;
use cairn_image::{EpollEntry, EpollImage, FdImage, FdKind, MemorySource, ProcessImage};
use cairn_sys::error::last_os;
use cairn_sys::inject::Injector;
use cairn_sys::{Error, Result};
use std::os::fd::{AsRawFd, OwnedFd};

/// [`crate::RecreateFn`] of epoll instances.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    let made = Made::create(image, "epoll instance", select, create)?;
    let mut instances: Vec<EpollImage> = Vec::new();
    for f in image.processes.iter().flat_map(|p| &p.fds) {
        if let FdKind::Epoll(e) = &f.kind {
            if !instances.iter().any(|i| i.id == e.id) {
                instances.push(e.clone());
            }
        }
    }
    Ok(Box::new(Epolls { made, instances }))
}

fn select(k: &FdKind) -> Option<(u64, &EpollImage)> {
    match k {
        FdKind::Epoll(e) => Some((e.id, e)),
        _ => None,
    }
}

/// Create one epoll instance of the image, with an empty interest list.
pub fn create(e: &EpollImage) -> Result<OwnedFd> {
    // SAFETY: epoll_create1 takes flags and returns a new descriptor.
    let fd = fresh(
        unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
        "epoll_create1",
    )?;
    if e.flags & libc::O_NONBLOCK != 0 {
        // SAFETY: fcntl on our own descriptor.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
            return Err(last_os("O_NONBLOCK on an epoll instance"));
        }
    }
    Ok(fd)
}

/// The flags of an events mask (`EP_PRIVATE_BITS`): EPOLLWAKEUP, EPOLLONESHOT, EPOLLET,
/// EPOLLEXCLUSIVE.
const FLAGS: u32 = (1 << 28) | (1 << 29) | (1 << 30) | (1 << 31);
/// The events a disarmed one-shot entry is armed for so that it fires at once.
const ANY: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLPRI | libc::EPOLLRDHUP) as u32;

/// A one-shot entry that fired: the kernel keeps only its flags.
fn disarmed(e: &EpollEntry) -> bool {
    e.events & libc::EPOLLONESHOT as u32 != 0 && e.events & !FLAGS == 0
}

/// Add the entries of `e` that belong in process `p` (whose descriptor `efd` is the
/// instance): those without a `holder` when `p` is the instance's first holder (`owner`),
/// else those whose `holder` is `(p, efd)`.
///
/// Adding an entry always arms it for EPOLLERR and EPOLLHUP, so a fired one-shot entry is
/// disarmed again by firing it: first, alone in the instance, armed for what its target is
/// ready for (asked with `poll`), then collected with `epoll_wait`. One whose target is ready
/// for nothing at all, or that another process than the first holder adds, stays armed for
/// EPOLLERR and EPOLLHUP only.
fn add_entries(
    inj: &Injector,
    p: &ProcessImage,
    efd: i32,
    e: &EpollImage,
    owner: bool,
) -> Result<()> {
    let mine: Vec<&EpollEntry> = e
        .entries
        .iter()
        .filter(|x| match x.holder {
            None => owner,
            Some(h) => h == (p.pid, efd),
        })
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    with_page(inj, |page| {
        let (first, rest): (Vec<&EpollEntry>, Vec<&EpollEntry>) =
            mine.into_iter().partition(|x| owner && disarmed(x));
        let mut to_fire = 0;
        for entry in first {
            let fd = entry.via.unwrap_or(entry.tfd);
            // struct pollfd { int fd; short events; short revents; }
            let mut pfd = fd.to_ne_bytes().to_vec();
            pfd.extend_from_slice(&(ANY as u16).to_ne_bytes());
            pfd.extend_from_slice(&0u16.to_ne_bytes());
            put(inj, page + 64, &pfd)?;
            inj.call("poll", libc::SYS_poll, &[page + 64, 1, 0])?;
            let mut revents = [0u8; 2];
            get(inj, page + 70, &mut revents)?;
            let revents = u32::from(u16::from_ne_bytes(revents));
            if revents != 0 {
                to_fire += 1;
            }
            add_one(inj, p, efd, entry, entry.events | (revents & ANY), page)?;
        }
        if to_fire > 0 {
            let fired = inj.call(
                "epoll_wait",
                libc::SYS_epoll_wait,
                &[efd as u64, page + 128, to_fire, 0],
            )?;
            if fired != to_fire {
                return Err(Error::Incompatible(format!(
                    "process {} fd {efd}: {fired} of {to_fire} fired one-shot epoll entries \
                     could be disarmed again",
                    p.pid
                )));
            }
        }
        for entry in rest {
            add_one(inj, p, efd, entry, entry.events, page)?;
        }
        Ok(())
    })
}

/// Add `entry` armed for `events`, its struct epoll_event written at `page`.
fn add_one(
    inj: &Injector,
    p: &ProcessImage,
    efd: i32,
    entry: &EpollEntry,
    events: u32,
    page: u64,
) -> Result<()> {
    // struct epoll_event is packed on x86_64: u32 events, u64 data.
    let mut ev = events.to_ne_bytes().to_vec();
    ev.extend_from_slice(&entry.data.to_ne_bytes());
    put(inj, page, &ev)?;
    add(inj, p, efd, entry, page).map_err(|err| {
        Error::Incompatible(format!(
            "process {} fd {efd}: adding the epoll entry of fd {} again: {err}",
            p.pid, entry.tfd
        ))
    })
}

fn add(inj: &Injector, p: &ProcessImage, efd: i32, entry: &EpollEntry, ev: u64) -> Result<()> {
    let tfd = entry.tfd as u64;
    let ctl = |inj: &Injector| {
        inj.call(
            "epoll_ctl(EPOLL_CTL_ADD)",
            libc::SYS_epoll_ctl,
            &[efd as u64, libc::EPOLL_CTL_ADD as u64, tfd, ev],
        )
        .map(|_| ())
    };
    let Some(via) = entry.via else {
        return ctl(inj);
    };
    // The target is descriptor `via`: put it at `tfd` for the call, keeping what is there.
    let held = p.fds.iter().find(|f| f.fd == entry.tfd);
    let saved = match held {
        Some(_) => Some(inj.call(
            "fcntl(F_DUPFD_CLOEXEC)",
            libc::SYS_fcntl,
            &[tfd, libc::F_DUPFD_CLOEXEC as u64, 0],
        )?),
        None => None,
    };
    inj.call("dup3", libc::SYS_dup3, &[via as u64, tfd, 0])?;
    let r = ctl(inj);
    let back = match (saved, held) {
        (Some(s), Some(h)) => {
            let flags = if h.cloexec { libc::O_CLOEXEC as u64 } else { 0 };
            let d = inj.call("dup3", libc::SYS_dup3, &[s, tfd, flags]);
            let c = inj.call("close", libc::SYS_close, &[s]);
            d.and(c).map(|_| ())
        }
        _ => inj.call("close", libc::SYS_close, &[tfd]).map(|_| ()),
    };
    r?;
    back
}

/// The job's epoll instances.
struct Epolls {
    made: Made,
    /// Each instance once (entries included).
    instances: Vec<EpollImage>,
}

impl Recreated for Epolls {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let (id, _) = select(&fd.kind)?;
        Some(self.made.hand_out(pid, fd, id))
    }
    fn descriptors_taken(&mut self) {
        self.made.close_copies();
    }
    fn in_process(&self, inj: &Injector, p: &ProcessImage) -> Result<()> {
        for e in &self.instances {
            if let Some(owner) = p.fds.iter().find(|f| self.made.owns(p.pid, f.fd, e.id)) {
                add_entries(inj, p, owner.fd, e, true)?;
            }
            let mut held: Vec<i32> = e
                .entries
                .iter()
                .filter_map(|x| x.holder)
                .filter(|h| h.0 == p.pid)
                .map(|h| h.1)
                .collect();
            held.sort_unstable();
            held.dedup();
            for efd in held {
                add_entries(inj, p, efd, e, false)?;
            }
        }
        Ok(())
    }
}
