//! A spinner on stderr for steps (checkpoints, restarts) that take more than a second, shown
//! only when stderr is a terminal; scripts and logs see nothing of it.

use std::io::IsTerminal as _;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a step runs before its spinner appears.
pub const DELAY: Duration = Duration::from_secs(1);

/// A running progress indication; dropping it (or [`Progress::done`]) clears it.
pub struct Progress {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the indication for a step described by `message`. Nothing is drawn unless
    /// stderr is a terminal and the step is still running after [`DELAY`].
    pub fn start(message: String) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                stop: None,
                thread: None,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cairn-progress".into())
            .spawn(move || {
                if rx.recv_timeout(DELAY) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_message(message);
                bar.enable_steady_tick(Duration::from_millis(100));
                // Returns when the step ends (the sender is dropped).
                let _ = rx.recv();
                bar.finish_and_clear();
            })
            .ok();
        Progress {
            stop: Some(tx),
            thread,
        }
    }

    /// Ends the indication (also done on drop).
    pub fn done(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A byte counter that a long step (a checkpoint's memory copy, a restore's reads, a verify)
/// advances from wherever it does the work; clones share the count.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Meter {
    /// A meter at zero.
    pub fn new() -> Meter {
        Meter::default()
    }

    /// Counts `n` more bytes done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes done so far.
    pub fn get(&self) -> u64 {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The counter itself, for code outside this crate that counts into it.
    pub fn counter(&self) -> &std::sync::atomic::AtomicU64 {
        &self.done
    }

    /// Back to zero (a new step).
    pub fn reset(&self) {
        self.done.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How often a long step writes its line into a log (stderr not a terminal).
pub const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// Starts the indication of a step measured in bytes: on a terminal, after [`DELAY`], a
    /// bar with the bytes done, the rate and the time left (when `total`, an estimate, is
    /// known); otherwise one line on stderr every [`LOG_EVERY`] while the step runs, so that a
    /// log shows the step is alive and how far it is.
    pub fn start_metered(message: String, meter: Meter, total: Option<u64>) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cairn-progress".into())
            .spawn(move || {
                if terminal {
                    draw_bar(&message, &meter, total, &rx);
                } else {
                    log_lines(&message, &meter, total, &rx);
                }
            })
            .ok();
        Progress {
            stop: Some(tx),
            thread,
        }
    }
}

/// The terminal bar, redrawn every 100 ms until the step ends.
fn draw_bar(message: &str, meter: &Meter, total: Option<u64>, rx: &mpsc::Receiver<()>) {
    if rx.recv_timeout(DELAY) != Err(RecvTimeoutError::Timeout) {
        return;
    }
    let bar = match total {
        Some(t) => {
            let bar = indicatif::ProgressBar::new(t);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}, {eta} left",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        }
        None => {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {msg}: {bytes} {binary_bytes_per_sec}",
            ) {
                bar.set_style(style);
            }
            bar
        }
    };
    bar.set_message(message.to_string());
    loop {
        let done = meter.get();
        bar.set_position(total.map_or(done, |t| done.min(t)));
        bar.tick();
        if rx.recv_timeout(Duration::from_millis(100)) != Err(RecvTimeoutError::Timeout) {
            break;
        }
    }
    bar.finish_and_clear();
}

/// One line every [`LOG_EVERY`] until the step ends.
fn log_lines(message: &str, meter: &Meter, total: Option<u64>, rx: &mpsc::Receiver<()>) {
    let started = std::time::Instant::now();
    while rx.recv_timeout(LOG_EVERY) == Err(RecvTimeoutError::Timeout) {
        eprintln!(
            "cairn: {message}: {}",
            progress_line(meter.get(), total, started.elapsed())
        );
    }
}

/// `1.2 GiB of about 4.0 GiB (30 %), 410.0 MiB/s, about 7 s left` (without a total: the
/// bytes and the rate).
pub fn progress_line(done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    let mut line = human(done as f64);
    if let Some(t) = total.filter(|t| *t > 0) {
        let shown = done.min(t);
        line.push_str(&format!(
            " of about {} ({} %)",
            human(t as f64),
            shown * 100 / t
        ));
        if rate > 0.0 {
            let left = (t - shown) as f64 / rate;
            line.push_str(&format!(
                ", {}/s, about {:.0} s left",
                human(rate),
                left.ceil()
            ));
            return line;
        }
    }
    line.push_str(&format!(", {}/s", human(rate)));
    line
}

/// Bytes in binary units with one decimal.
fn human(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_bytes_done_of_the_estimate_rate_and_time_left() {
        let line = progress_line(1 << 30, Some(4 << 30), Duration::from_secs(2));
        assert_eq!(
            line,
            "1.0 GiB of about 4.0 GiB (25 %), 512.0 MiB/s, about 6 s left"
        );
        assert_eq!(
            progress_line(3 << 20, None, Duration::from_secs(1)),
            "3.0 MiB, 3.0 MiB/s"
        );
        // More done than estimated: never above 100 %, no negative time left.
        assert!(
            progress_line(5 << 30, Some(4 << 30), Duration::from_secs(1))
                .contains("(100 %), 5.0 GiB/s, about 0 s left")
        );
    }

    #[test]
    fn a_meter_counts_across_clones_and_resets() {
        let m = Meter::new();
        let c = m.clone();
        c.add(10);
        m.add(5);
        assert_eq!(m.get(), 15);
        m.reset();
        assert_eq!(c.get(), 0);
    }
}
