//! The agent: the process that owns one job. It launches the program (or restores it from a
//! generation), then runs an event loop over the program's pidfd, a signalfd and an interval
//! timer: SIGUSR1 and ticks take a checkpoint, termination signals are forwarded (or, for
//! `cairn run`, trigger a final checkpoint and a stop), and the program's exit ends the loop.
//!
//! Each checkpoint is written as one generation (layout in docs/design/contracts.md) and is
//! committed only when complete; a checkpoint during which the program exits is abandoned.

pub mod error;
pub mod events;
pub mod exit;
pub mod incremental;
pub mod indexing;
pub mod job;
pub mod progress;
pub mod report;
pub mod sandbox_job;
pub mod supervisor;

use std::time::{Duration, Instant};

use cairn_store::{now_ms, GenerationInfo, Store, StreamRef, WriteStats, Writer};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

pub use cairn_capture::CutBarrier;
pub use error::AgentError;
pub use events::{block_agent_signals, Event, EventSource};
pub use exit::ProgramExit;
pub use job::JobProcess;
pub use report::{AgentReport, CheckpointReport, JobEnd};
pub use supervisor::{Alone, Supervisor};

use crate::layout::{self, Meta};
use crate::store_io;

/// How long a failed capture waits to see whether the program has exited.
const EXIT_GRACE: Duration = Duration::from_millis(300);

/// What the agent does with SIGTERM and the checkpoint signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPolicy {
    /// `cairn launch`/`restart`: SIGUSR1 checkpoints; SIGTERM, SIGINT, SIGHUP, SIGQUIT and
    /// SIGUSR2 are forwarded to the program.
    Forward,
    /// `cairn run`: this signal and SIGTERM take a final checkpoint and stop the program;
    /// SIGUSR1 (when it is not this signal) takes an ordinary checkpoint.
    CheckpointAndStop(Signal),
}

/// How an agent is set up.
pub struct AgentOptions {
    /// The store generations are written to.
    pub store: Store,
    /// The job name.
    pub job: String,
    /// This agent's id inside the job (its directory `agents/<id>/` in generations).
    pub agent_id: String,
    /// Periodic checkpoints.
    pub interval: Option<Duration>,
    /// Signal handling.
    pub stop: StopPolicy,
    /// Print progress lines (`cairn: ...`) on stderr.
    pub verbose: bool,
    /// Retention applied after every committed checkpoint (`cairn run --keep-last N`): the
    /// job's generations are pruned by this policy and the store is swept.
    pub retention: Option<cairn_gc::Policy>,
}

/// An agent running one job's program `P`.
pub struct Agent<P: JobProcess> {
    opts: AgentOptions,
    process: P,
    events: EventSource,
    restored_from: Option<u64>,
    checkpoints: Vec<CheckpointReport>,
    failed: u32,
    /// Regions of the last committed checkpoint / of the one being written.
    baseline: incremental::Baseline,
    pending: Option<incremental::Baseline>,
    pages: incremental::PageCounts,
    /// Index rows of the last checkpoint's packs, written after its commit.
    indexing: indexing::BackgroundIndex,
    /// Bytes of memory the current checkpoint has read (its progress).
    meter: progress::Meter,
}

impl<P: JobProcess> Agent<P> {
    /// Takes charge of `process` (just launched, or restored from generation `restored_from`).
    /// The agent signals must already be blocked ([`block_agent_signals`]).
    pub fn new(
        opts: AgentOptions,
        process: P,
        restored_from: Option<u64>,
    ) -> Result<Self, AgentError> {
        let extra = match opts.stop {
            StopPolicy::CheckpointAndStop(s) => Some(s),
            StopPolicy::Forward => None,
        };
        let events = EventSource::new(opts.interval, extra)?;
        // The first checkpoint after a restart stores only the pages that differ from the
        // generation the program was restored from (docs/incremental.md).
        let baseline = restored_from
            .map(|g| incremental::restored_baseline(&opts.store, g, &opts.agent_id))
            .unwrap_or_default();
        Ok(Agent {
            opts,
            process,
            events,
            restored_from,
            checkpoints: Vec::new(),
            failed: 0,
            baseline,
            pending: None,
            pages: incremental::PageCounts::default(),
            indexing: indexing::BackgroundIndex::default(),
            meter: progress::Meter::new(),
        })
    }

    /// The program being run.
    pub fn process(&self) -> &P {
        &self.process
    }

    /// Makes the next checkpoints one agent's part of a global cut (see
    /// [`JobProcess::set_cut_barrier`]); returns the barrier set before.
    pub fn set_cut_barrier(
        &mut self,
        barrier: Option<Box<dyn CutBarrier>>,
    ) -> Option<Box<dyn CutBarrier>> {
        self.process.set_cut_barrier(barrier)
    }

    /// Prints `cairn: MSG` on stderr when the agent is verbose.
    pub fn say(&self, msg: std::fmt::Arguments<'_>) {
        if self.opts.verbose {
            eprintln!("cairn: {msg}");
        }
    }

    /// True when the program has exited (its pidfd is readable), waiting at most `grace`.
    fn program_gone(&self, grace: Duration) -> bool {
        let mut fds = [PollFd::new(self.process.pidfd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(grace).unwrap_or(PollTimeout::ZERO);
        matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
    }

    /// Freezes and captures the program, writing its tree (`image.json`, `mem/`, `files/`;
    /// the contents of `agents/<id>/` in a generation) through `writer`. Returns the tree and
    /// how long the program was frozen. Nothing is committed: a coordinator puts the trees of
    /// all its agents into one generation; [`Agent::checkpoint_now`] commits a single one.
    /// Callers report the result with [`Agent::checkpoint_outcome`]; when they do not, the
    /// next checkpoint is taken in full.
    pub fn write_agent_tree(
        &mut self,
        writer: &mut Writer,
    ) -> Result<(StreamRef, Duration), AgentError> {
        if self.pending.take().is_some() {
            // The previous tree's fate was never reported (checkpoint_outcome): it may not
            // have been committed, so it cannot be the base of this one.
            self.checkpoint_outcome(false);
        }
        let mut sink = store_io::StoreSink::with_baseline(writer, &self.baseline)
            .with_precopy()
            .metered(self.meter.clone());
        let frozen_at = Instant::now();
        let captured = self.process.checkpoint(&mut sink);
        // Capture with pre-copy knows how long the program was really frozen.
        let frozen = self
            .process
            .last_frozen()
            .unwrap_or_else(|| frozen_at.elapsed());
        let (next, pages) = sink.take_incremental();
        (self.pending, self.pages) = (Some(next), pages);
        let image = match captured {
            Ok(image) => image,
            // A capture that fails because the program died: its sandbox follows it shortly.
            Err(_) if self.program_gone(EXIT_GRACE) => {
                return Err(AgentError::ExitedDuringCheckpoint)
            }
            Err(e) => return Err(e),
        };
        let image_json =
            serde_json::to_vec(&image).map_err(|e| AgentError::Capture(e.to_string()))?;
        Ok((sink.finish_tree(&image_json)?, frozen))
    }

    /// Tells the agent whether the tree last written by [`Agent::write_agent_tree`] was
    /// committed: only a committed checkpoint may be the base of an incremental one.
    pub fn checkpoint_outcome(&mut self, committed: bool) {
        match (committed, self.pending.take()) {
            (true, Some(next)) => self.baseline = next,
            _ => {
                self.baseline.clear();
                self.process.checkpoint_abandoned();
            }
        }
    }

    /// Takes a checkpoint now and commits it as a new generation of the job. Nothing is
    /// committed when it fails; when the program exited meanwhile the error is
    /// [`AgentError::ExitedDuringCheckpoint`].
    pub fn checkpoint_now(&mut self) -> Result<CheckpointReport, AgentError> {
        let r = self.checkpoint_once();
        self.checkpoint_outcome(r.is_ok());
        r
    }

    fn checkpoint_once(&mut self) -> Result<CheckpointReport, AgentError> {
        let started = Instant::now();
        let start_ms = now_ms();
        self.say(format_args!("checkpoint started (job {})", self.opts.job));
        self.meter.reset();
        let _progress = self.opts.verbose.then(|| {
            progress::Progress::start_metered(
                format!("checkpointing job {}", self.opts.job),
                self.meter.clone(),
                self.process.resident_bytes(),
            )
        });
        self.indexing.wait();
        let mut writer = self.opts.store.writer()?;
        let (agent_tree, frozen) = self.write_agent_tree(&mut writer)?;
        let meta = Meta::new(
            &self.opts.job,
            &layout::hostname(),
            vec![self.opts.agent_id.clone()],
        );
        let root = layout::write_root(
            &mut writer,
            &meta,
            vec![(self.opts.agent_id.clone(), agent_tree)],
        )?;
        let (stats, unindexed) = writer.finish_deferred()?;
        if self.program_gone(Duration::ZERO) {
            // The program ended while its image was being written: a restart from this image
            // would run its end a second time, so the checkpoint is abandoned.
            unindexed.abandon();
            return Err(AgentError::ExitedDuringCheckpoint);
        }
        let info = GenerationInfo {
            kind: layout::CHECKPOINT_KIND.into(),
            start_ms,
            end_ms: now_ms(),
            frozen_ms: frozen.as_millis() as u64,
            stats: stats.clone(),
            pages_scanned: self.pages.scanned,
            pages_skipped: self.pages.skipped,
        };
        let id = match self.opts.store.commit(&self.opts.job, &root, info) {
            Ok(id) => id,
            Err(e) => {
                // Nothing references what this checkpoint stored: it goes (docs/gc.md).
                unindexed.abandon();
                return Err(e.into());
            }
        };
        self.indexing.start(unindexed);
        let report = CheckpointReport {
            generation: id.0,
            frozen_secs: frozen.as_secs_f64(),
            total_secs: started.elapsed().as_secs_f64(),
            logical_bytes: stats.logical_bytes,
            written_bytes: stats.new_stored_bytes,
            pages_scanned: self.pages.scanned,
            pages_skipped: self.pages.skipped,
        };
        self.say(format_args!(
            "checkpoint committed: generation {} (frozen {:.3}s, total {:.3}s, {} bytes captured, {} bytes written, {} pages scanned, {} skipped)",
            report.generation, report.frozen_secs, report.total_secs, report.logical_bytes, report.written_bytes, report.pages_scanned, report.pages_skipped
        ));
        if let Some(why) = self.process.tracking_problem() {
            self.say(format_args!(
                "dirty-page tracking unavailable, checkpoints stay full: {why}"
            ));
        }
        self.checkpoints.push(report.clone());
        self.apply_retention();
        Ok(report)
    }

    /// Prunes and sweeps after a commit when a retention policy is set. A failure here never
    /// harms the job or the generation just committed: it is reported and the job goes on.
    fn apply_retention(&self) {
        let Some(policy) = &self.opts.retention else {
            return;
        };
        match cairn_gc::prune_after_checkpoint(&self.opts.store, &self.opts.job, policy) {
            Ok(done) => self.say(format_args!("retention: {}", retention_line(&done))),
            Err(e) => self.say(format_args!("retention failed (job continues): {e}")),
        }
    }

    /// Checkpoints, logging (not returning) failures; the program keeps running either way.
    pub fn checkpoint_logged(&mut self) -> Result<Option<CheckpointReport>, AgentError> {
        let result = self.checkpoint_now();
        self.events.drain_ticks();
        match result {
            Ok(r) => Ok(Some(r)),
            Err(AgentError::ExitedDuringCheckpoint) => {
                self.failed += 1;
                self.say(format_args!(
                    "checkpoint abandoned: the program exited during it"
                ));
                Ok(None)
            }
            Err(e) => {
                self.failed += 1;
                self.say(format_args!("checkpoint failed, nothing committed: {e}"));
                Ok(None)
            }
        }
    }

    fn report(&self, end: JobEnd) -> AgentReport {
        AgentReport {
            job: self.opts.job.clone(),
            restored_from: self.restored_from,
            end,
            checkpoints: self.checkpoints.clone(),
            failed_checkpoints: self.failed,
        }
    }

    /// Kills the program (SIGKILL to the whole job) and waits for it.
    pub fn kill_program(&mut self) -> Result<ProgramExit, AgentError> {
        self.process.kill()?;
        self.process.reap()
    }

    /// Stops the program from outside: SIGKILL (a failure is only reported: the program may
    /// have exited on its own meanwhile, reaping tells), then waits for it.
    pub fn stop_program(&mut self) -> Result<ProgramExit, AgentError> {
        if let Err(e) = self.process.kill() {
            self.say(format_args!("killing the program: {e}"));
        }
        self.process.reap()
    }

    /// The options the agent runs with.
    pub fn options(&self) -> &AgentOptions {
        &self.opts
    }

    /// Pages read and skipped by the last checkpoint.
    pub fn page_counts(&self) -> incremental::PageCounts {
        self.pages
    }

    /// Records a checkpoint committed for this agent by someone else (a coordinator).
    pub fn record_checkpoint(&mut self, report: CheckpointReport) {
        self.checkpoints.push(report);
    }

    /// Counts a checkpoint that failed (reported in [`AgentReport::failed_checkpoints`]).
    pub fn count_failed_checkpoint(&mut self) {
        self.failed += 1;
    }

    /// Captures the program into an agent tree and makes it durable ([`Writer::finish`]);
    /// returns the tree, how long the program was frozen and the writer's statistics.
    /// Nothing is committed: whoever commits reports it with [`Agent::checkpoint_outcome`].
    pub fn store_agent_tree(&mut self) -> Result<(StreamRef, Duration, WriteStats), AgentError> {
        let mut writer = self.opts.store.writer()?;
        let (root, frozen) = self.write_agent_tree(&mut writer)?;
        let write = writer.finish()?;
        if self.program_gone(Duration::ZERO) {
            // Restarting from this image would run the program's end a second time.
            return Err(AgentError::ExitedDuringCheckpoint);
        }
        Ok((root, frozen, write))
    }

    /// Runs the event loop until the program ends (or, with
    /// [`StopPolicy::CheckpointAndStop`], until it was checkpointed and stopped); the agent
    /// checkpoints on its own ([`Alone`]).
    pub fn run(self) -> Result<AgentReport, AgentError> {
        self.run_supervised(&mut Alone)
    }

    /// [`Agent::run`] under a supervisor (e.g. a coordinator's connection): it may add a
    /// descriptor to the loop, decides what a wanted checkpoint does, and may end the loop.
    pub fn run_supervised<S: Supervisor<P>>(
        mut self,
        sup: &mut S,
    ) -> Result<AgentReport, AgentError> {
        let end = self.event_loop(sup);
        sup.on_end();
        end.map(|end| self.report(end))
    }

    fn event_loop<S: Supervisor<P>>(&mut self, sup: &mut S) -> Result<JobEnd, AgentError> {
        loop {
            let event = self.events.next_with(self.process.pidfd(), sup.watch())?;
            match event {
                Event::External => {
                    if let Some(end) = sup.on_ready(self)? {
                        return Ok(end);
                    }
                }
                Event::Exited => {
                    let status = self.process.reap()?;
                    return Ok(JobEnd::Exited { status });
                }
                Event::Tick => sup.checkpoint_wanted(self)?,
                Event::Signal {
                    signal,
                    from_kernel,
                } => {
                    if let Some(end) = self.on_signal(sup, signal, from_kernel)? {
                        return Ok(end);
                    }
                }
            }
        }
    }

    fn on_signal<S: Supervisor<P>>(
        &mut self,
        sup: &mut S,
        signal: Signal,
        from_kernel: bool,
    ) -> Result<Option<JobEnd>, AgentError> {
        let stop_signal = match self.opts.stop {
            StopPolicy::CheckpointAndStop(s) if signal == s || signal == Signal::SIGTERM => Some(s),
            _ => None,
        };
        if stop_signal.is_some() {
            self.say(format_args!("{signal}: final checkpoint, then stop"));
            self.process.final_checkpoint(true);
            let done = self.checkpoint_now();
            if done.is_err() {
                self.process.final_checkpoint(false);
            }
            match done {
                Ok(r) => {
                    self.process.kill()?;
                    self.process.reap()?;
                    for line in self.process.stopped() {
                        self.say(format_args!("{line}"));
                    }
                    return Ok(Some(JobEnd::Checkpointed {
                        generation: r.generation,
                    }));
                }
                Err(AgentError::ExitedDuringCheckpoint) => {
                    self.failed += 1;
                    self.say(format_args!(
                        "checkpoint abandoned: the program exited during it"
                    ));
                }
                Err(e) => {
                    self.failed += 1;
                    self.say(format_args!(
                        "final checkpoint failed, the program keeps running: {e}"
                    ));
                }
            }
            return Ok(None);
        }
        if signal == Signal::SIGUSR1 {
            sup.checkpoint_wanted(self)?;
            return Ok(None);
        }
        // Signals the terminal sent to the whole foreground process group already reached
        // the program; only those addressed to the agent itself are passed on.
        if !from_kernel {
            if let Err(e) = self.process.signal(signal) {
                self.say(format_args!("forwarding {signal}: {e}"));
            }
        }
        Ok(None)
    }
}

/// What a retention pass after a checkpoint did, in words that say what is free now and what
/// only later (a dropped generation's chunks are freed by a sweep once their packs are past
/// the grace period that protects concurrent readers).
fn retention_line(done: &cairn_gc::AfterCheckpoint) -> String {
    let dropped = &done.prune.removed;
    let what = if dropped.is_empty() {
        "nothing dropped".to_string()
    } else {
        let ids: Vec<String> = dropped.iter().map(|g| g.0.to_string()).collect();
        format!("dropped generation(s) {}", ids.join(", "))
    };
    let sweep = &done.sweep;
    let freed = sweep.bytes_before.saturating_sub(sweep.bytes_after);
    let mut line = format!("{what}; freed {freed} bytes now");
    let later = sweep.young + sweep.waiting;
    if later > 0 {
        line.push_str(&format!(
            " ({later} pack(s) inside the grace period that protects readers are looked at by a later sweep)"
        ));
    }
    line.push_str(&format!(
        "; the store's packs hold {} bytes",
        sweep.bytes_after
    ));
    line
}
