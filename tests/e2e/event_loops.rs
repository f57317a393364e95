//! Event loops across checkpoint → kill -9 → restart cycles: eventfd, signalfd, timerfd and
//! epoll descriptors keep every attribute (tests/programs/{eventfd,signalfd,timerfd,epoll}.c
//! check them all after each cycle and print what differs), as root and as an unprivileged
//! user; the output under cairn equals the native run's.

use cairn_testkit::{self as common, differential, Area, Cycles, Program};

/// Runs conformance program `name` (STEPS as its argument) natively and under cairn, as
/// `user` or as the test's own user, and checks that it saw every attribute right.
fn conformance(name: &str, steps: &str, user: Option<&str>) {
    let mut prog = Program::c(name, &[steps]);
    if let Some(u) = user {
        common::open_up(&common::compile_c(name));
        prog = prog.run_as(u);
    }
    let job = format!("{name}-{}", user.unwrap_or("root"));
    let out = differential(&prog, &job, &Cycles::default());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("PASS\n"), "{text}");
}

#[test]
fn eventfd_counter_semaphore_and_flags_survive() {
    let _area = Area::enter(module_path!());
    conformance("eventfd", "200", None);
}

#[test]
fn eventfd_survives_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    conformance("eventfd", "200", Some("cairn-test"));
}

#[test]
fn signalfd_mask_flags_and_pending_signals_survive() {
    let _area = Area::enter(module_path!());
    conformance("signalfd", "200", None);
}

#[test]
fn signalfd_survives_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    conformance("signalfd", "200", Some("cairn-test"));
}

/// Besides the attributes, an absolute CLOCK_MONOTONIC timer must keep its expiry on the
/// program's clock (within 20 ms), which after a restore runs in the job's time namespace.
#[test]
fn timerfd_clocks_expiries_and_unread_expirations_survive() {
    let _area = Area::enter(module_path!());
    conformance("timerfd", "200", None);
}

#[test]
fn timerfd_survives_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    conformance("timerfd", "200", Some("cairn-test"));
}

#[test]
fn epoll_interest_list_ready_events_and_waiting_thread_survive() {
    let _area = Area::enter(module_path!());
    conformance("epoll", "200", None);
}

#[test]
fn epoll_survives_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    conformance("epoll", "200", Some("cairn-test"));
}

/// An epoll entry whose target no process holding the instance holds any more (its
/// descriptor closed, the file open only in a child that does not hold the instance) is
/// refused with a message naming the
/// process, the descriptor and the entry; the program keeps running to its end.
#[test]
fn epoll_entry_of_a_target_no_longer_held_is_refused_and_the_job_continues() {
    let _area = Area::enter(module_path!());
    use std::time::Duration;
    let prog = Program::c("epoll_lost_target", &["150"]);
    let scratch = common::Scratch::new();
    let dir = scratch.sub("cairn");
    let mut job = common::Job::start(
        &prog,
        "launch",
        &scratch.store(),
        "epoll-refused",
        &[],
        &dir,
        true,
    );
    assert!(job.wait_for_lines(common::RUNNING, 1, Duration::from_secs(60)));
    let stdout = dir.join("stdout");
    let first = || {
        std::fs::read_to_string(&stdout)
            .unwrap_or_default()
            .lines()
            .next()
            .map(str::to_string)
    };
    let started = std::time::Instant::now();
    while !first().is_some_and(|l| l.starts_with("pid")) {
        assert!(started.elapsed() < Duration::from_secs(60), "no output");
        std::thread::sleep(Duration::from_millis(5));
    }
    let line = first().unwrap_or_default();
    // "pid P, epoll fd E, target fd T"
    let nums: Vec<&str> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let [pid, efd, tfd] = nums[..] else {
        panic!("unexpected first line {line}");
    };
    job.signal(libc::SIGUSR1);
    assert!(
        job.wait_for_lines("checkpoint failed", 1, Duration::from_secs(60)),
        "{}",
        job.log_text()
    );
    let log = job.log_text();
    let want = format!(
        "process {pid} fd {efd}: epoll entry registered as fd {tfd}, whose file no process \
         holding the instance holds any more"
    );
    assert!(log.contains(&want), "expected {want:?} in:\n{log}");
    assert_eq!(job.wait(Duration::from_secs(60)), 0, "{log}");
    let text = std::fs::read_to_string(&stdout).unwrap_or_default();
    assert!(text.ends_with("step 150\ndone\n"), "{text}");
}

/// A real event loop: Python asyncio (epoll, a socketpair, a pipe reader, timers) gives the
/// native output after three checkpoint → kill -9 → restart cycles.
#[test]
fn python_asyncio_with_timers() {
    let _area = Area::enter(module_path!());
    let prog = Program::script("python3", "asyncio_timers.py", &["300"]);
    differential(&prog, "asyncio", &Cycles::default());
}

/// Python asyncio running subprocesses through pipes (the loop's child watcher, stdin and
/// stdout pipes of three children at a time, timers) gives the native output after three
/// checkpoint → kill -9 → restart cycles; the children are part of the job.
#[test]
fn python_asyncio_with_subprocess_pipes() {
    let _area = Area::enter(module_path!());
    // The system's interpreter, for the children too (sys.executable).
    let prog = Program::script("/usr/bin/python3", "asyncio_subprocess.py", &["100"]);
    differential(&prog, "asyncio-subprocess", &Cycles::default());
}

#[test]
fn python_asyncio_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    // The system's interpreter: one under root's home is not the user's to run.
    let prog =
        Program::script("/usr/bin/python3", "asyncio_timers.py", &["300"]).run_as("cairn-test");
    common::open_up(&common::programs_dir().join("asyncio_timers.py"));
    differential(&prog, "asyncio-user", &Cycles::default());
}

#[test]
fn inotify_watches_descriptors_and_events_survive() {
    let _area = Area::enter(module_path!());
    conformance("inotify", "200", None);
}

/// Without CAP_DAC_READ_SEARCH the watched paths are found by their inodes: an unprivileged
/// cairn restores the watches under their numbers too.
#[test]
fn inotify_survives_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    conformance("inotify", "200", Some("cairn-test"));
}

/// A watched path removed while the job was down makes the restart fail with a message
/// naming it.
#[test]
fn inotify_watched_path_gone_at_restart_is_a_clear_error() {
    let _area = Area::enter(module_path!());
    use std::time::Duration;
    let prog = Program::c("inotify", &["300"]);
    let scratch = common::Scratch::new();
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    let mut job = common::Job::start(&prog, "launch", &store, "inotify-gone", &[], &dir, true);
    let stdout = dir.join("stdout");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&stdout).is_ok_and(|t| t.contains("step 1 ok")) {
        assert!(started.elapsed() < Duration::from_secs(60), "no output");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(job.checkpoint(), "{}", job.log_text());
    job.kill_all();
    let later = dir.join("watched/later");
    std::fs::remove_dir(&later).expect("removing a watched directory");
    let job = common::Job::start(&prog, "restart", &store, "inotify-gone", &[], &dir, false);
    let log_path = job.log.clone();
    let code = job.wait(Duration::from_secs(60));
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert_ne!(code, 0, "{log}");
    let want = format!("watching {} again: it no longer exists", later.display());
    assert!(log.contains(&want), "expected {want:?} in:\n{log}");
}

/// eventfds, a timerfd and an epoll instance inherited across fork stay shared by the parent
/// and the child: they wake each other through them after every restart.
#[test]
fn event_descriptors_shared_by_parent_and_child_survive() {
    let _area = Area::enter(module_path!());
    conformance("event_shared", "200", None);
}

/// An epoll instance shared across fork, to which the child added descriptors of its own
/// (one registered under a number it closed since): the entries are added in the child.
#[test]
fn epoll_entries_added_by_a_child_to_a_shared_instance_survive() {
    let _area = Area::enter(module_path!());
    conformance("epoll_fork", "200", None);
}
