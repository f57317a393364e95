//! The agent's event sources: the program's pidfd, a signalfd for the signals the agent
//! reacts to, and an optional interval timer, multiplexed with `poll(2)`.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::error::AgentError;

/// The signals an agent handles itself instead of dying from them.
pub const AGENT_SIGNALS: [Signal; 6] = [
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The set of [`AGENT_SIGNALS`] plus `extra` (e.g. `cairn run --checkpoint-signal`).
pub fn agent_sigset(extra: Option<Signal>) -> SigSet {
    let mut set = SigSet::empty();
    for s in AGENT_SIGNALS.into_iter().chain(extra) {
        set.add(s);
    }
    set
}

/// Blocks [`AGENT_SIGNALS`] (and `extra`) in the calling thread, so that they are only ever
/// delivered through the agent's signalfd, and returns the previous mask. Call it first thing,
/// before any other thread is started: threads inherit the mask, and a signal reaching a thread
/// that does not block it would run its default action (terminate the agent).
pub fn block_agent_signals(extra: Option<Signal>) -> Result<SigSet, AgentError> {
    let mut old = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_BLOCK,
        Some(&agent_sigset(extra)),
        Some(&mut old),
    )
    .map_err(|e| AgentError::sys("blocking signals", e))?;
    Ok(old)
}

/// Something that happened, as reported by [`EventSource::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The watched process has exited (its pidfd became readable); reap it.
    Exited,
    /// The agent received this signal.
    Signal {
        /// Which signal.
        signal: Signal,
        /// Sent by the kernel (e.g. the terminal's Ctrl-C to the foreground process group)
        /// rather than by kill(2) addressed to the agent.
        from_kernel: bool,
    },
    /// The interval timer fired.
    Tick,
    /// The extra descriptor given to [`EventSource::next_with`] is readable.
    External,
}

/// The multiplexer over signalfd, timerfd and the watched process's pidfd.
pub struct EventSource {
    signals: SignalFd,
    timer: Option<TimerFd>,
}

impl EventSource {
    /// Creates the signalfd for [`AGENT_SIGNALS`] and `extra` (which must already be blocked,
    /// see [`block_agent_signals`]) and, with `interval`, a periodic monotonic timer.
    pub fn new(interval: Option<Duration>, extra: Option<Signal>) -> Result<Self, AgentError> {
        let signals = SignalFd::with_flags(
            &agent_sigset(extra),
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        )
        .map_err(|e| AgentError::sys("signalfd", e))?;
        let timer = match interval {
            None => None,
            Some(d) if d.is_zero() => None,
            Some(d) => {
                let t = TimerFd::new(
                    ClockId::CLOCK_MONOTONIC,
                    TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK,
                )
                .map_err(|e| AgentError::sys("timerfd_create", e))?;
                t.set(
                    Expiration::Interval(TimeSpec::from_duration(d)),
                    TimerSetTimeFlags::empty(),
                )
                .map_err(|e| AgentError::sys("timerfd_settime", e))?;
                Some(t)
            }
        };
        Ok(EventSource { signals, timer })
    }

    /// Waits for the next event. Exits take precedence over signals, signals over ticks, so
    /// that a checkpoint is never started for a program that is already gone.
    pub fn next(&mut self, pidfd: BorrowedFd<'_>) -> Result<Event, AgentError> {
        self.next_with(pidfd, None)
    }

    /// [`EventSource::next`] that also watches `extra` (e.g. a coordinator connection),
    /// reported as [`Event::External`] after exits and signals, before ticks.
    pub fn next_with(
        &mut self,
        pidfd: BorrowedFd<'_>,
        extra: Option<BorrowedFd<'_>>,
    ) -> Result<Event, AgentError> {
        loop {
            let (exited, signalled, external, ticked) = {
                let mut fds = vec![
                    PollFd::new(pidfd, PollFlags::POLLIN),
                    PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                ];
                let extra_at = extra.map(|fd| {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    fds.len() - 1
                });
                let timer_at = self.timer.as_ref().map(|t| {
                    fds.push(PollFd::new(t.as_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                });
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(AgentError::sys("poll", e)),
                }
                let ready = |f: &PollFd| {
                    f.revents()
                        .is_some_and(|r| !(r & (PollFlags::POLLIN | PollFlags::POLLHUP)).is_empty())
                };
                (
                    ready(&fds[0]),
                    ready(&fds[1]),
                    extra_at.is_some_and(|i| ready(&fds[i])),
                    timer_at.is_some_and(|i| ready(&fds[i])),
                )
            };
            if exited {
                return Ok(Event::Exited);
            }
            if signalled {
                if let Some(ev) = self.read_signal()? {
                    return Ok(ev);
                }
            }
            if external {
                return Ok(Event::External);
            }
            if ticked {
                if let Some(t) = &self.timer {
                    // Consume the expiration count; a tick missed while busy is not queued.
                    let mut buf = [0u8; 8];
                    match nix::unistd::read(t.as_fd(), &mut buf) {
                        Ok(_) | Err(Errno::EAGAIN) => {}
                        Err(e) => return Err(AgentError::sys("reading timerfd", e)),
                    }
                }
                return Ok(Event::Tick);
            }
        }
    }

    /// Drops the timer ticks that accumulated while the agent was busy (e.g. checkpointing).
    pub fn drain_ticks(&mut self) {
        if let Some(t) = &self.timer {
            let mut buf = [0u8; 8];
            let _ = nix::unistd::read(t.as_fd(), &mut buf);
        }
    }

    fn read_signal(&mut self) -> Result<Option<Event>, AgentError> {
        match self.signals.read_signal() {
            Ok(Some(info)) => {
                Ok(Signal::try_from(info.ssi_signo as i32)
                    .ok()
                    .map(|signal| Event::Signal {
                        signal,
                        from_kernel: info.ssi_code == libc::SI_KERNEL,
                    }))
            }
            Ok(None) | Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(AgentError::sys("reading signalfd", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::Command;

    fn pidfd_of(pid: u32) -> OwnedFd {
        // SAFETY: pidfd_open on a child of ours; the returned descriptor is owned below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        assert!(fd >= 0, "pidfd_open failed");
        // SAFETY: a fresh descriptor returned by the kernel.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    }

    // Each test runs in its own thread: blocking signals there affects only that thread, and
    // raise() directs the signal at the same thread, which reads it from the signalfd.

    #[test]
    fn reports_the_exit_of_the_watched_process() {
        block_agent_signals(None).unwrap();
        let mut child = Command::new("sleep").arg("0.05").spawn().unwrap();
        let pidfd = pidfd_of(child.id());
        let mut ev = EventSource::new(None, None).unwrap();
        assert_eq!(ev.next(pidfd.as_fd()).unwrap(), Event::Exited);
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn reports_signals_before_exits_of_others_and_ticks() {
        block_agent_signals(Some(Signal::SIGALRM)).unwrap();
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let pidfd = pidfd_of(child.id());
        let mut ev =
            EventSource::new(Some(Duration::from_millis(20)), Some(Signal::SIGALRM)).unwrap();
        assert_eq!(ev.next(pidfd.as_fd()).unwrap(), Event::Tick);
        nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
        assert_eq!(
            ev.next(pidfd.as_fd()).unwrap(),
            Event::Signal {
                signal: Signal::SIGUSR1,
                from_kernel: false
            }
        );
        nix::sys::signal::raise(Signal::SIGALRM).unwrap();
        assert_eq!(
            ev.next(pidfd.as_fd()).unwrap(),
            Event::Signal {
                signal: Signal::SIGALRM,
                from_kernel: false
            }
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(ev.next(pidfd.as_fd()).unwrap(), Event::Exited);
    }

    #[test]
    fn reports_an_extra_descriptor_after_signals() {
        block_agent_signals(None).unwrap();
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let pidfd = pidfd_of(child.id());
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut ev = EventSource::new(None, None).unwrap();
        nix::unistd::write(&w, b"x").unwrap();
        nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
        assert!(matches!(
            ev.next_with(pidfd.as_fd(), Some(r.as_fd())).unwrap(),
            Event::Signal { .. }
        ));
        assert_eq!(
            ev.next_with(pidfd.as_fd(), Some(r.as_fd())).unwrap(),
            Event::External
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            ev.next_with(pidfd.as_fd(), Some(r.as_fd())).unwrap(),
            Event::Exited
        );
    }

    #[test]
    fn ticks_do_not_pile_up_while_busy() {
        block_agent_signals(None).unwrap();
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let pidfd = pidfd_of(child.id());
        let mut ev = EventSource::new(Some(Duration::from_millis(10)), None).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        ev.drain_ticks();
        child.kill().unwrap();
        child.wait().unwrap();
        // Ten ticks were missed, but after draining the exit is seen first.
        assert_eq!(ev.next(pidfd.as_fd()).unwrap(), Event::Exited);
    }
}
