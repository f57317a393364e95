//! Index rows of a checkpoint's packs, written after its commit on a thread of their own
//! (docs/incremental.md, "Deferred indexing"): the generation is durable and restorable
//! without them, so they stay off the checkpoint's critical path.

use std::thread::JoinHandle;

use cairn_store::{PendingIndex, StoreError};

/// At most one background index update at a time; waited for before the next checkpoint and
/// when dropped (so an agent that ends leaves a complete index behind).
#[derive(Default)]
pub struct BackgroundIndex {
    running: Option<JoinHandle<Result<(), StoreError>>>,
}

impl BackgroundIndex {
    /// Starts writing `pending` (after waiting for the previous update).
    pub fn start(&mut self, pending: PendingIndex) {
        self.wait();
        if pending.packs() == 0 {
            return;
        }
        match std::thread::Builder::new()
            .name("cairn-index".into())
            .spawn(move || pending.apply())
        {
            Ok(h) => self.running = Some(h),
            // The rows are lost with the closure: harmless, see `wait`.
            Err(e) => report(Err(StoreError::Io {
                context: "starting the index thread".into(),
                source: e,
            })),
        }
    }

    /// Waits for the update in progress, if any; a failure is reported, not returned (the
    /// packs stay readable: readers index packs missing from the index from their trailers).
    pub fn wait(&mut self) {
        if let Some(h) = self.running.take() {
            match h.join() {
                Ok(r) => report(r),
                Err(_) => report(Err(StoreError::InvalidArgument(
                    "the index thread panicked".into(),
                ))),
            }
        }
    }
}

fn report(r: Result<(), StoreError>) {
    if let Err(e) = r {
        eprintln!(
            "cairn: warning: indexing the checkpoint's packs failed ({e}); they stay readable and are indexed when next needed"
        );
    }
}

impl Drop for BackgroundIndex {
    fn drop(&mut self) {
        self.wait();
    }
}
