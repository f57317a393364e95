//! When a sleeping thread went to sleep, on CLOCK_MONOTONIC: what a wait with a timeout that
//! the kernel keeps only in its own state (poll's restart block, epoll_wait's timeout)
//! needs to continue with the time that was left of it.
//!
//! The scheduler's `se.exec_start` (`/proc/TID/sched`) is the last time the thread's run
//! time was accounted, on its CPU's task clock: for a thread asleep, the moment it went to
//! sleep. That clock is the CPU's scheduler clock without interrupt and steal time, so it is
//! put on CLOCK_MONOTONIC by reading the same field of the calling thread, just accounted
//! (`sched_yield`) on that CPU. The interrupt and steal time of the sleep itself makes the
//! result a little late, never early: a wait computed from it ends no earlier than the
//! kernel would have ended it.
//!
//! The snapshot is taken before the thread is stopped (stopping it runs it); the thread must
//! have been asleep then and not have slept again before the stop, which its count of
//! voluntary context switches tells: exactly one more (the stop).

/// A thread seen asleep: its sleep's start on its CPU's task clock.
#[derive(Clone, Copy, Debug)]
pub struct Asleep {
    exec_start_ns: u64,
    voluntary: u64,
    cpu: usize,
}

/// `se.exec_start` and `nr_voluntary_switches` of `/proc/TID/sched`.
fn sched(path: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let field = |key: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split(':').nth(1))
            .map(str::trim)
    };
    Some((
        milliseconds_to_ns(field("se.exec_start")?)?,
        field("nr_voluntary_switches")?.parse().ok()?,
    ))
}

/// "22242178.290080" (milliseconds with six decimals) in nanoseconds.
fn milliseconds_to_ns(v: &str) -> Option<u64> {
    let (ms, frac) = v.split_once('.').unwrap_or((v, "0"));
    let frac = format!("{frac:0<6}");
    Some(ms.parse::<u64>().ok()? * 1_000_000 + frac.get(..6)?.parse::<u64>().ok()?)
}

/// Thread `tid` (outer tid) as it is now, when it is asleep (state S).
pub fn snapshot(tid: i32) -> Option<Asleep> {
    let (exec_start_ns, voluntary) = sched(&format!("/proc/{tid}/sched"))?;
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the name: state is field 3 of stat(5), processor field 39.
    if fields.first() != Some(&"S") {
        return None;
    }
    let cpu = fields.get(36)?.parse().ok()?;
    Some(Asleep {
        exec_start_ns,
        voluntary,
        cpu,
    })
}

/// CLOCK_MONOTONIC now, in nanoseconds.
pub fn monotonic_now() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_MONOTONIC minus CPU `cpu`'s task clock, as this thread reads them there (at least
/// the true difference, by the few microseconds between the two reads).
fn offset_on(cpu: usize) -> Option<i128> {
    // SAFETY: cpu_set_t is plain data; zeroed is an empty set.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: sched_getaffinity of this thread into our own set.
    if unsafe { libc::sched_getaffinity(0, size, &mut old) } != 0 {
        return None;
    }
    // SAFETY: as above.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * size {
        return None;
    }
    // SAFETY: CPU_SET on our own set, cpu checked against its size.
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: sched_setaffinity of this thread with a set of our own.
    if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
        return None;
    }
    // The yield accounts this thread's run time, which stamps its exec_start with the CPU's
    // task clock now.
    // SAFETY: sched_yield takes no arguments.
    unsafe { libc::sched_yield() };
    let mine = sched("/proc/thread-self/sched");
    let now = monotonic_now();
    // SAFETY: restores this thread's own affinity.
    unsafe { libc::sched_setaffinity(0, size, &old) };
    Some(now - i128::from(mine?.0))
}

/// When the thread seen as `before` went to sleep, on CLOCK_MONOTONIC (nanoseconds), now
/// that it is stopped (outer tid `tid`); None when it slept again in between or the clocks
/// cannot be related.
pub fn slept_since(tid: i32, before: Asleep) -> Option<i128> {
    let (_, voluntary) = sched(&format!("/proc/{tid}/sched"))?;
    if voluntary != before.voluntary + 1 {
        return None;
    }
    Some(i128::from(before.exec_start_ns) + offset_on(before.cpu)?)
}

/// Milliseconds left until `end` (CLOCK_MONOTONIC nanoseconds), rounded up, at least 0.
pub fn ms_left(end: i128) -> u64 {
    let left = end - monotonic_now();
    if left <= 0 {
        0
    } else {
        u64::try_from((left + 999_999) / 1_000_000).unwrap_or(u64::MAX)
    }
}

/// `ms` as nanoseconds.
pub fn ms(ms: u64) -> i128 {
    i128::from(ms) * 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn scheduler_milliseconds_are_read_to_the_nanosecond() {
        assert_eq!(
            milliseconds_to_ns("22242178.290080"),
            Some(22_242_178_290_080)
        );
        assert_eq!(milliseconds_to_ns("5.1"), Some(5_100_000));
        assert_eq!(milliseconds_to_ns("7"), Some(7_000_000));
    }

    #[test]
    fn a_sleeping_thread_is_seen_to_have_slept_since_it_started_sleeping() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let started = monotonic_now();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid takes no arguments.
            let tid = unsafe { libc::gettid() };
            let _ = rx.recv_timeout(Duration::from_secs(5));
            tid
        });
        std::thread::sleep(Duration::from_millis(300));
        // The thread's tid: the newest task of this process.
        let tid = std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .max()
            .expect("a task");
        let snap = snapshot(tid).expect("asleep");
        let start = i128::from(snap.exec_start_ns) + offset_on(snap.cpu).expect("an offset");
        let now = monotonic_now();
        tx.send(()).ok();
        assert_eq!(t.join().ok(), Some(tid));
        assert!(
            start >= started && start <= now - ms(250),
            "{started} {start} {now}"
        );
    }
}
