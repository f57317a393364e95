//! Event loops across checkpoint → kill -9 → restart cycles: eventfd, signalfd, timerfd and
//! epoll descriptors keep every attribute (tests/programs/{eventfd,signalfd,timerfd,epoll}.c
//! check them all after each cycle and print what differs), as root and as an unprivileged
//! user; the output under cairn equals the native run's.

mod common;

use common::{differential, Cycles, Program};

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
    conformance("eventfd", "200", None);
}

#[test]
fn eventfd_survives_as_unprivileged_user() {
    conformance("eventfd", "200", Some("cairn-test"));
}

#[test]
fn signalfd_mask_flags_and_pending_signals_survive() {
    conformance("signalfd", "200", None);
}

#[test]
fn signalfd_survives_as_unprivileged_user() {
    conformance("signalfd", "200", Some("cairn-test"));
}

/// Besides the attributes, an absolute CLOCK_MONOTONIC timer must keep its expiry on the
/// program's clock (within 20 ms), which after a restore runs in the job's time namespace.
#[test]
fn timerfd_clocks_expiries_and_unread_expirations_survive() {
    conformance("timerfd", "200", None);
}

#[test]
fn timerfd_survives_as_unprivileged_user() {
    conformance("timerfd", "200", Some("cairn-test"));
}
