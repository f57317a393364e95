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
