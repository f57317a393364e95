//! The agent inside a coordinated computation (`cairn launch`/`restart` with a coordinator).
//!
//! The coordinator's connection joins the agent's poll loop. On `checkpoint {token}` the agent
//! freezes and captures its program into its own subtree (`agents/<id>/`) with its own store
//! writer, makes it durable (`Writer::finish`), answers `checkpoint_stored` (or
//! `checkpoint_failed`), and lets the program run again; the coordinator commits one
//! generation for all agents and reports the outcome with `checkpoint_done`. `kill` and `quit`
//! stop the program. SIGUSR1 asks the coordinator for a checkpoint of the whole computation.
//!
//! When the coordinator goes away (stopped by a signal, crashed, network lost), the program
//! keeps running unsupervised: the agent prints a warning, stops answering checkpoint
//! requests, and only waits for the program to end. Checkpointing it alone would commit a
//! generation missing the computation's other agents.

use std::collections::HashMap;
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use cairn_store::{StreamRef, WriteStats};
use nix::sys::signal::Signal;

use super::progress::Progress;
use super::{Agent, AgentError, AgentReport, CheckpointReport, Event, JobEnd, JobProcess};
use crate::client::{AgentConnection, ClientError, CommandClient, CoordinatorAddress};
use crate::protocol::{AgentStats, CoordinatorMessage, Request, Response};

/// An agent's own part of one checkpoint, kept until the coordinator reports the outcome.
struct Stored {
    started: Instant,
    frozen: Duration,
    write: WriteStats,
}

/// What the loop does after a coordinator message.
enum Next {
    Continue,
    Lost(String),
    End(JobEnd),
}

impl<P: JobProcess> Agent<P> {
    /// Runs the event loop of a coordinated agent registered through `conn` with the
    /// coordinator at `addr`, until the program ends or the coordinator stops it.
    pub fn run_coordinated(
        mut self,
        conn: AgentConnection,
        addr: CoordinatorAddress,
    ) -> Result<AgentReport, AgentError> {
        let mut conn = Some(conn);
        let mut stored: HashMap<u64, Stored> = HashMap::new();
        loop {
            let event = {
                let peer = conn.as_ref().map(|c| c.as_fd());
                self.events.next_with(self.process.pidfd(), peer)?
            };
            match event {
                Event::Exited => {
                    let status = self.process.reap()?;
                    if let Some(c) = conn.take() {
                        c.close();
                    }
                    return Ok(self.report(JobEnd::Exited { status }));
                }
                // Coordinated agents have no timer of their own (the coordinator's
                // `--interval` schedules checkpoints); a tick asks it like SIGUSR1 does.
                Event::Tick => self.request_checkpoint(&addr, conn.is_some()),
                Event::Signal {
                    signal: Signal::SIGUSR1,
                    ..
                } => self.request_checkpoint(&addr, conn.is_some()),
                Event::Signal {
                    signal,
                    from_kernel,
                } => {
                    if let Some(end) = self.on_signal(signal, from_kernel)? {
                        return Ok(self.report(end));
                    }
                }
                Event::External => {
                    let Some(c) = conn.as_mut() else { continue };
                    let next = match c.recv() {
                        Ok(Some(msg)) => self.on_message(msg, c, &mut stored)?,
                        Ok(None) => Next::Lost("it closed the connection".into()),
                        Err(e) => Next::Lost(e.to_string()),
                    };
                    match next {
                        Next::Continue => {}
                        Next::Lost(why) => {
                            eprintln!(
                                "cairn: warning: lost the coordinator ({why}); the program keeps running without checkpoints"
                            );
                            conn = None;
                        }
                        Next::End(end) => {
                            if let Some(c) = conn.take() {
                                c.close();
                            }
                            return Ok(self.report(end));
                        }
                    }
                }
            }
        }
    }

    fn on_message(
        &mut self,
        msg: CoordinatorMessage,
        conn: &mut AgentConnection,
        stored: &mut HashMap<u64, Stored>,
    ) -> Result<Next, AgentError> {
        let sent = match msg {
            CoordinatorMessage::Checkpoint { generation_token } => {
                self.store_for_coordinator(generation_token, conn, stored)
            }
            CoordinatorMessage::CheckpointDone {
                token,
                generation,
                reason,
            } => {
                self.checkpoint_done(token, generation.map(|g| g.0), reason, stored);
                Ok(())
            }
            CoordinatorMessage::Kill | CoordinatorMessage::Quit => {
                self.say(format_args!("the coordinator stops the computation"));
                // The program may have exited on its own meanwhile; reap tells.
                if let Err(e) = self.process.kill() {
                    self.say(format_args!("killing the program: {e}"));
                }
                let status = self.process.reap()?;
                return Ok(Next::End(JobEnd::Exited { status }));
            }
            CoordinatorMessage::Error { message } => {
                eprintln!("cairn: warning: the coordinator says: {message}");
                Ok(())
            }
            CoordinatorMessage::Registered { .. } => Ok(()),
        };
        Ok(match sent {
            Ok(()) => Next::Continue,
            Err(e) => Next::Lost(e.to_string()),
        })
    }

    /// Captures the program into this agent's subtree and makes it durable; returns the
    /// subtree, the freeze time and the writer's statistics. Nothing is committed.
    fn store_agent_tree(&mut self) -> Result<(StreamRef, Duration, WriteStats), AgentError> {
        let mut writer = self.opts.store.writer()?;
        let (root, frozen) = self.write_agent_tree(&mut writer)?;
        let write = writer.finish()?;
        if self.program_gone(Duration::ZERO) {
            // Restarting from this image would run the program's end a second time.
            return Err(AgentError::ExitedDuringCheckpoint);
        }
        Ok((root, frozen, write))
    }

    fn store_for_coordinator(
        &mut self,
        token: u64,
        conn: &mut AgentConnection,
        stored: &mut HashMap<u64, Stored>,
    ) -> Result<(), ClientError> {
        let started = Instant::now();
        self.say(format_args!(
            "checkpoint {token} requested by the coordinator"
        ));
        let progress = self
            .opts
            .verbose
            .then(|| Progress::start(format!("checkpointing job {}", self.opts.job)));
        let outcome = self.store_agent_tree();
        drop(progress);
        match outcome {
            Ok((root, frozen, write)) => {
                let stats = AgentStats {
                    write: write.clone(),
                    frozen_ms: frozen.as_millis() as u64,
                    pages_scanned: self.pages.scanned,
                    pages_skipped: self.pages.skipped,
                };
                stored.insert(
                    token,
                    Stored {
                        started,
                        frozen,
                        write,
                    },
                );
                conn.checkpoint_stored(token, root, stats)
            }
            Err(e) => {
                self.checkpoint_outcome(false);
                self.say(format_args!("checkpoint {token} failed here: {e}"));
                conn.checkpoint_failed(token, &e.to_string())
            }
        }
    }

    fn checkpoint_done(
        &mut self,
        token: u64,
        generation: Option<u64>,
        reason: Option<String>,
        stored: &mut HashMap<u64, Stored>,
    ) {
        let mine = stored.remove(&token);
        if mine.is_some() {
            // Only a committed tree may be the base of the next incremental checkpoint.
            self.checkpoint_outcome(generation.is_some());
        }
        match (generation, mine) {
            (Some(generation), Some(s)) => {
                let report = CheckpointReport {
                    generation,
                    frozen_secs: s.frozen.as_secs_f64(),
                    total_secs: s.started.elapsed().as_secs_f64(),
                    logical_bytes: s.write.logical_bytes,
                    written_bytes: s.write.new_stored_bytes,
                    pages_scanned: self.pages.scanned,
                    pages_skipped: self.pages.skipped,
                };
                self.say(format_args!(
                    "checkpoint committed: generation {generation} (frozen {:.3}s, total {:.3}s, {} bytes captured, {} bytes written by this agent, {} pages scanned, {} skipped)",
                    report.frozen_secs, report.total_secs, report.logical_bytes, report.written_bytes, report.pages_scanned, report.pages_skipped
                ));
                self.checkpoints.push(report);
            }
            (Some(generation), None) => {
                self.say(format_args!("generation {generation} committed"));
            }
            (None, _) => {
                self.failed += 1;
                self.say(format_args!(
                    "checkpoint {token} failed, nothing committed: {}",
                    reason.as_deref().unwrap_or("no reason given")
                ));
            }
        }
    }

    /// SIGUSR1: asks the coordinator to checkpoint the whole computation.
    fn request_checkpoint(&self, addr: &CoordinatorAddress, connected: bool) {
        if !connected {
            eprintln!("cairn: warning: no coordinator any more; checkpoint request ignored");
            return;
        }
        let answer = CommandClient::connect(addr)
            .and_then(|mut c| c.request(&Request::Checkpoint { wait: false }));
        match answer {
            Ok(Response::CheckpointStarted { token }) => self.say(format_args!(
                "asked the coordinator: checkpoint {token} started"
            )),
            Ok(Response::Refused { reason, .. }) => {
                self.say(format_args!("checkpoint request refused: {reason}"))
            }
            Ok(other) => self.say(format_args!("checkpoint request: {other:?}")),
            Err(e) => eprintln!("cairn: warning: asking the coordinator for a checkpoint: {e}"),
        }
    }
}
