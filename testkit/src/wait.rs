//! Waiting for a condition, always with a bound.

use std::time::{Duration, Instant};

/// Polls `cond` every 10 ms until it holds; panics naming `what` once `within` has passed.
pub fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
