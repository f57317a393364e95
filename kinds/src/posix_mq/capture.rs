//! POSIX message queues at a checkpoint: descriptors are files of the mqueue filesystem; each
//! queue is read once through a fresh open of its `/proc/PID/fd/N` link (attributes, the
//! notification line) and its messages are taken out and put back at once, in order, while
//! the job is frozen.

use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, PosixMq, PosixMqMessage, ProcessTreeImage};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::{Error, Result};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// `f_type` of the mqueue filesystem.
const MQUEUE_MAGIC: i64 = 0x1980_0202;

/// Whether the file `path` (a `/proc/PID/fd/N` link) is on the mqueue filesystem.
fn on_mqueue(path: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct it is given; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == MQUEUE_MAGIC
    }
}

/// [`crate::DescribeFn`] of POSIX message queues.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    let meta = fd.meta.as_ref().ok().filter(|m| m.is_file())?;
    if !on_mqueue(&format!("/proc/{}/fd/{}", fd.pid, fd.fd)) {
        return None;
    }
    if !fd.inside {
        let name = fd.link.strip_suffix(" (deleted)").unwrap_or(fd.link);
        return Some(Err(fd.unsupported(format_args!(
            "POSIX message queue {name} (mq_open) received from outside the job"
        ))));
    }
    Some(Ok(FdKind::PosixMq {
        queue: meta.ino(),
        open: 0,
        flags: fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK),
    }))
}

/// The open file description id of a queue descriptor.
fn open_mut(k: &mut FdKind) -> Option<&mut u64> {
    match k {
        FdKind::PosixMq { open, .. } => Some(open),
        _ => None,
    }
}

/// [`crate::CaptureFn`] of POSIX message queues: numbers the open file descriptions and
/// records every queue once, with its messages.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    crate::shared::number(job, image, open_mut);
    let mut queues: Vec<PosixMq> = Vec::new();
    for (p, &outer) in image.processes.iter().zip(job.outer) {
        for f in &p.fds {
            let FdKind::PosixMq { queue, .. } = f.kind else {
                continue;
            };
            if queues.iter().any(|q| q.id == queue) {
                continue;
            }
            let q = read_queue(outer, f.fd, queue).map_err(|e| {
                Error::Unsupported(format!("process {} fd {}: {}", p.pid, f.fd, reason(e)))
            })?;
            queues.push(q);
        }
    }
    image.posix_mqs = queues;
    Ok(())
}

/// The text of an error without the variant's own prefix.
fn reason(e: Error) -> String {
    match e {
        Error::Unsupported(s) | Error::Incompatible(s) => s,
        other => other.to_string(),
    }
}

/// `struct mq_attr`.
#[repr(C)]
#[derive(Default)]
struct MqAttr {
    flags: i64,
    maxmsg: i64,
    msgsize: i64,
    curmsgs: i64,
    pad: [i64; 4],
}

/// Reads queue `id`, descriptor `fd` of process `outer` (frozen).
fn read_queue(outer: i32, fd: i32, id: u64) -> Result<PosixMq> {
    let path = format!("/proc/{outer}/fd/{fd}");
    let link = std::fs::read_link(&path).map_err(io_ctx(format!("reading {path}")))?;
    let link = link.to_string_lossy().into_owned();
    let (name, unlinked) = match link.strip_suffix(" (deleted)") {
        Some(n) => (n.to_string(), true),
        None => (link.clone(), false),
    };
    let what = format!("POSIX message queue {name} (mq_open)");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| {
            Error::Unsupported(format!(
                "{what} cannot be checkpointed: opening it to read its messages: {e}"
            ))
        })?;
    let mut status = String::new();
    file.read_to_string(&mut status)
        .map_err(io_ctx(format!("reading the status of {what}")))?;
    let notify_pid = status
        .split_whitespace()
        .find_map(|w| w.strip_prefix("NOTIFY_PID:"))
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "{what} cannot be checkpointed: this kernel does not show its notification \
                 ({status:?})"
            ))
        })?;
    if notify_pid != 0 {
        return Err(Error::Unsupported(format!(
            "{what} with a notification registered (mq_notify) cannot be checkpointed: the \
             kernel does not show its sigevent value or thread"
        )));
    }
    let meta = file.metadata().map_err(io_ctx(format!("stat of {what}")))?;
    let mut attr = MqAttr::default();
    // SAFETY: mq_getsetattr reads nothing (new attributes NULL) and fills `attr`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mq_getsetattr,
            file.as_raw_fd(),
            std::ptr::null::<MqAttr>(),
            &mut attr as *mut MqAttr,
        )
    };
    if r < 0 {
        return Err(last_os(format!("mq_getattr of {what}")));
    }
    let messages = take_and_put_back(&file, &attr, &what)?;
    Ok(PosixMq {
        id,
        name,
        unlinked,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        maxmsg: attr.maxmsg,
        msgsize: attr.msgsize,
        messages,
    })
}

/// Takes the `curmsgs` messages of the queue (non-blocking, through our own description) and
/// sends them back in the order received, which keeps the queue's order: highest priority
/// first, oldest first within a priority. The job is frozen: no process of it waits in the
/// queue (a frozen task's blocking call has left its wait queue and restarts later).
fn take_and_put_back(
    file: &std::fs::File,
    attr: &MqAttr,
    what: &str,
) -> Result<Vec<PosixMqMessage>> {
    let mut messages = Vec::new();
    let mut buf = vec![0u8; attr.msgsize.max(1) as usize];
    let mut taken_err = None;
    for _ in 0..attr.curmsgs {
        let mut prio: u32 = 0;
        // SAFETY: receives into a live buffer of its length; a null timeout (never blocks:
        // the description is non-blocking).
        let n = unsafe {
            libc::syscall(
                libc::SYS_mq_timedreceive,
                file.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut prio as *mut u32,
                std::ptr::null::<libc::timespec>(),
            )
        };
        if n < 0 {
            taken_err = Some(last_os(format!("reading the messages of {what}")));
            break;
        }
        messages.push(PosixMqMessage {
            prio,
            data: buf[..n as usize].to_vec(),
        });
    }
    put_back(file.as_raw_fd(), &messages, what)?;
    match taken_err {
        Some(e) => Err(e),
        None => Ok(messages),
    }
}

/// Sends `messages` into the queue open (non-blocking) as `fd`, in order.
fn put_back(fd: i32, messages: &[PosixMqMessage], what: &str) -> Result<()> {
    for m in messages {
        // SAFETY: sends from a live buffer of its length; a null timeout.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mq_timedsend,
                fd,
                m.data.as_ptr(),
                m.data.len(),
                m.prio,
                std::ptr::null::<libc::timespec>(),
            )
        };
        if r < 0 {
            return Err(last_os(format!("putting a message back into {what}")));
        }
    }
    Ok(())
}
