//! Areas of tests that must not overlap.
//!
//! The end-to-end tests are one binary whose tests run in parallel. Tests of one area (those
//! that were one binary before) were written to run beside each other; tests of two heavy or
//! timing-sensitive areas never ran at the same time: an agent's checkpoint, a lazy restore,
//! a Slurm requeue or a scan of every process on the host (`dirtymem`'s descriptors) could be
//! slowed or disturbed by another area's jobs. A test of such an area holds its [`Area`] for
//! its whole run: any number of tests of one area run together (and with tests outside any
//! area), never tests of two areas.

use std::sync::{Condvar, Mutex};

/// The area whose tests run now, and how many of them.
struct Gate {
    area: Option<&'static str>,
    holders: usize,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    area: None,
    holders: 0,
});
static CHANGED: Condvar = Condvar::new();

/// A test's hold on its area; released when dropped (also when the test panics).
#[must_use = "the area is released when this guard is dropped"]
pub struct Area {
    name: &'static str,
}

impl Area {
    /// Waits until no test of another area runs, then holds `name` until the guard drops.
    pub fn enter(name: &'static str) -> Area {
        let mut gate = GATE.lock().unwrap_or_else(|e| e.into_inner());
        while gate.area.is_some_and(|a| a != name) {
            gate = CHANGED.wait(gate).unwrap_or_else(|e| e.into_inner());
        }
        gate.area = Some(name);
        gate.holders += 1;
        Area { name }
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        let mut gate = GATE.lock().unwrap_or_else(|e| e.into_inner());
        debug_assert_eq!(gate.area, Some(self.name));
        gate.holders -= 1;
        if gate.holders == 0 {
            gate.area = None;
            CHANGED.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Area;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn tests_of_one_area_share_it() {
        let first = Area::enter("shared");
        let second = Area::enter("shared");
        drop(first);
        drop(second);
    }

    #[test]
    fn two_areas_never_overlap() {
        static IN_A: AtomicUsize = AtomicUsize::new(0);
        static IN_B: AtomicUsize = AtomicUsize::new(0);
        let threads: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let (name, mine, other) = if i % 2 == 0 {
                        ("a", &IN_A, &IN_B)
                    } else {
                        ("b", &IN_B, &IN_A)
                    };
                    let _area = Area::enter(name);
                    mine.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(other.load(Ordering::SeqCst), 0, "areas overlapped");
                    std::thread::sleep(Duration::from_millis(50));
                    assert_eq!(other.load(Ordering::SeqCst), 0, "areas overlapped");
                    mine.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a thread of the test panicked");
        }
    }
}
