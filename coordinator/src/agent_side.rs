//! The agent's side of the coordinator protocol (`cairn launch`/`restart` with a
//! coordinator): it drives the engine's agent through its public API.
//!
//! The coordinator's connection joins the agent's poll loop (a [`Supervisor`]). On
//! `checkpoint {token}` the agent freezes and captures its program into its own subtree
//! (`agents/<id>/`) with its own store writer, makes it durable (`Writer::finish`), answers
//! `checkpoint_stored` (or `checkpoint_failed`), and lets the program run again; the
//! coordinator commits one generation for all agents and reports the outcome with
//! `checkpoint_done`. `kill` and `quit` stop the program. SIGUSR1 asks the coordinator for a
//! checkpoint of the whole computation.
//!
//! When the coordinator goes away (stopped by a signal, crashed, network lost), the program
//! keeps running unsupervised: the agent prints a warning, stops answering checkpoint
//! requests, and only waits for the program to end. Checkpointing it alone would commit a
//! generation missing the computation's other agents.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd as _, BorrowedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_engine::agent::progress::Progress;
use cairn_engine::agent::{
    Agent, AgentError, AgentReport, CheckpointReport, CutBarrier, JobEnd, JobProcess, Supervisor,
};
use cairn_store::WriteStats;

use crate::client::{AgentConnection, ClientError, CommandClient, CoordinatorAddress};
use crate::protocol::{
    AgentMessage, AgentStats, CoordinatorMessage, Endpoint, GenerationId, Request, Response,
};

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

/// The coordinator, as the supervisor of one agent.
struct Coordinated {
    conn: Option<AgentConnection>,
    addr: CoordinatorAddress,
    stored: HashMap<u64, Stored>,
}

/// Runs the event loop of `agent`, registered through `conn` with the coordinator at `addr`,
/// until the program ends or the coordinator stops it.
pub fn run_coordinated<P: JobProcess>(
    agent: Agent<P>,
    conn: AgentConnection,
    addr: CoordinatorAddress,
) -> Result<AgentReport, AgentError> {
    agent.run_supervised(&mut Coordinated {
        conn: Some(conn),
        addr,
        stored: HashMap::new(),
    })
}

impl<P: JobProcess> Supervisor<P> for Coordinated {
    fn watch(&self) -> Option<BorrowedFd<'_>> {
        self.conn.as_ref().map(|c| c.as_fd())
    }

    fn on_ready(&mut self, agent: &mut Agent<P>) -> Result<Option<JobEnd>, AgentError> {
        let Some(c) = self.conn.as_mut() else {
            return Ok(None);
        };
        let next = match c.recv() {
            Ok(Some(msg)) => on_message(agent, msg, c, &mut self.stored)?,
            Ok(None) => Next::Lost("it closed the connection".into()),
            Err(e) => Next::Lost(e.to_string()),
        };
        match next {
            Next::Continue => Ok(None),
            Next::Lost(why) => {
                eprintln!(
                    "cairn: warning: lost the coordinator ({why}); the program keeps running without checkpoints"
                );
                self.conn = None;
                Ok(None)
            }
            Next::End(end) => Ok(Some(end)),
        }
    }

    /// Coordinated agents have no timer of their own (the coordinator's `--interval`
    /// schedules checkpoints); SIGUSR1 or a tick asks the coordinator.
    fn checkpoint_wanted(&mut self, agent: &mut Agent<P>) -> Result<(), AgentError> {
        request_checkpoint(agent, &self.addr, self.conn.is_some());
        Ok(())
    }

    fn on_end(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }
}

fn on_message<P: JobProcess>(
    agent: &mut Agent<P>,
    msg: CoordinatorMessage,
    conn: &mut AgentConnection,
    stored: &mut HashMap<u64, Stored>,
) -> Result<Next, AgentError> {
    let sent = match msg {
        CoordinatorMessage::Checkpoint { generation_token } => {
            match store_for_coordinator(agent, generation_token, conn, stored) {
                Err(ClientError::Rejected(m)) if m == STOPPED => {
                    agent.say(format_args!("{STOPPED}"));
                    let status = agent.stop_program()?;
                    return Ok(Next::End(JobEnd::Exited { status }));
                }
                r => r,
            }
        }
        CoordinatorMessage::CheckpointDone {
            token,
            generation,
            reason,
        } => {
            checkpoint_done(agent, token, generation.map(|g| g.0), reason, stored);
            Ok(())
        }
        CoordinatorMessage::Kill | CoordinatorMessage::Quit => {
            agent.say(format_args!("the coordinator stops the computation"));
            let status = agent.stop_program()?;
            return Ok(Next::End(JobEnd::Exited { status }));
        }
        CoordinatorMessage::Error { message } => {
            eprintln!("cairn: warning: the coordinator says: {message}");
            Ok(())
        }
        CoordinatorMessage::Registered { .. } => Ok(()),
        // Barrier steps outside a checkpoint of this agent (one it already gave up).
        CoordinatorMessage::Drain { .. }
        | CoordinatorMessage::Capture { .. }
        | CoordinatorMessage::Resume { .. } => Ok(()),
    };
    Ok(match sent {
        Ok(()) => Next::Continue,
        Err(e) => Next::Lost(e.to_string()),
    })
}

fn store_for_coordinator<P: JobProcess>(
    agent: &mut Agent<P>,
    token: u64,
    conn: &mut AgentConnection,
    stored: &mut HashMap<u64, Stored>,
) -> Result<(), ClientError> {
    let started = Instant::now();
    agent.say(format_args!(
        "checkpoint {token} requested by the coordinator"
    ));
    let progress = agent
        .options()
        .verbose
        .then(|| Progress::start(format!("checkpointing job {}", agent.options().job)));
    let notes = Arc::new(Mutex::new(Notes::default()));
    let barrier = conn.try_clone().map(|c| {
        Box::new(Barrier {
            conn: c,
            token,
            notes: notes.clone(),
        }) as Box<dyn CutBarrier>
    })?;
    agent.set_cut_barrier(Some(barrier));
    let outcome = agent.store_agent_tree();
    agent.set_cut_barrier(None);
    drop(progress);
    let notes = std::mem::take(&mut *notes.lock().unwrap_or_else(|p| p.into_inner()));
    if let Some(end) = notes.end {
        if outcome.is_ok() {
            agent.checkpoint_outcome(false);
        }
        return Err(end);
    }
    if let Some((_, reason)) = notes.done {
        // The coordinator abandoned the checkpoint while this agent was in the barrier.
        agent.checkpoint_outcome(false);
        agent.count_failed_checkpoint();
        agent.say(format_args!(
            "checkpoint {token} failed, nothing committed: {}",
            reason.as_deref().unwrap_or("no reason given")
        ));
        return Ok(());
    }
    match outcome {
        Ok((root, frozen, write)) => {
            let pages = agent.page_counts();
            let stats = AgentStats {
                write: write.clone(),
                frozen_ms: frozen.as_millis() as u64,
                pages_scanned: pages.scanned,
                pages_skipped: pages.skipped,
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
            agent.checkpoint_outcome(false);
            agent.say(format_args!("checkpoint {token} failed here: {e}"));
            conn.checkpoint_failed(token, &e.to_string())
        }
    }
}

/// What the coordinator said while an agent waited in the barrier, besides the next step.
#[derive(Default)]
struct Notes {
    /// The checkpoint's outcome arrived (it was abandoned).
    done: Option<(Option<GenerationId>, Option<String>)>,
    /// The coordinator stopped the computation or went away.
    end: Option<ClientError>,
}

/// The coordinator's side of the global cut, used by the capture while the programs are
/// frozen: every step is reported, then the agent waits for the coordinator's next one.
struct Barrier {
    conn: AgentConnection,
    token: u64,
    notes: Arc<Mutex<Notes>>,
}

/// `ip:port` of a socket address as the protocol carries it.
fn endpoint(e: &(SocketAddr, SocketAddr)) -> Endpoint {
    Endpoint {
        local: e.0.to_string(),
        peer: e.1.to_string(),
    }
}

impl Barrier {
    fn send(&mut self, msg: AgentMessage) -> Result<(), String> {
        self.conn.send(&msg).map_err(|e| {
            let why = format!("lost the coordinator: {e}");
            self.note_end(e);
            why
        })
    }

    fn note_end(&self, e: ClientError) {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).end = Some(e);
    }

    /// Waits for the coordinator's next step of this checkpoint; `Err` when the checkpoint
    /// was abandoned, the computation stopped or the coordinator went away.
    fn next_step(&mut self) -> Result<CoordinatorMessage, String> {
        loop {
            let msg = match self.conn.recv() {
                Ok(Some(m)) => m,
                Ok(None) => {
                    self.note_end(ClientError::Closed);
                    return Err("the coordinator closed the connection".into());
                }
                Err(e) => {
                    let why = format!("lost the coordinator: {e}");
                    self.note_end(e);
                    return Err(why);
                }
            };
            match msg {
                CoordinatorMessage::Drain { token, .. }
                | CoordinatorMessage::Capture { token }
                | CoordinatorMessage::Resume { token }
                    if token == self.token =>
                {
                    return Ok(msg)
                }
                CoordinatorMessage::CheckpointDone {
                    token,
                    generation,
                    reason,
                } if token == self.token => {
                    let why = reason
                        .clone()
                        .unwrap_or_else(|| "abandoned by the coordinator".into());
                    self.notes.lock().unwrap_or_else(|p| p.into_inner()).done =
                        Some((generation, reason));
                    return Err(format!("checkpoint abandoned: {why}"));
                }
                CoordinatorMessage::Kill | CoordinatorMessage::Quit => {
                    self.notes.lock().unwrap_or_else(|p| p.into_inner()).end =
                        Some(ClientError::Rejected(STOPPED.into()));
                    return Err(STOPPED.into());
                }
                CoordinatorMessage::Error { message } => {
                    eprintln!("cairn: warning: the coordinator says: {message}");
                }
                _ => {}
            }
        }
    }
}

/// Why a barrier ends when the coordinator stops the computation.
const STOPPED: &str = "the coordinator stops the computation";

impl CutBarrier for Barrier {
    fn frozen(
        &mut self,
        ends: &[(SocketAddr, SocketAddr)],
    ) -> Result<Vec<(SocketAddr, SocketAddr)>, String> {
        let endpoints = ends.iter().map(endpoint).collect();
        self.send(AgentMessage::Frozen {
            token: self.token,
            endpoints,
        })?;
        match self.next_step()? {
            CoordinatorMessage::Drain { peers, .. } => peers
                .iter()
                .map(|e| match (e.local.parse(), e.peer.parse()) {
                    (Ok(l), Ok(p)) => Ok((l, p)),
                    _ => Err(format!("the coordinator sent a bad endpoint {e:?}")),
                })
                .collect(),
            other => Err(format!("expected drain, the coordinator sent {other:?}")),
        }
    }

    fn drained(&mut self) -> Result<(), String> {
        self.send(AgentMessage::Drained { token: self.token })?;
        match self.next_step()? {
            CoordinatorMessage::Capture { .. } => Ok(()),
            other => Err(format!("expected capture, the coordinator sent {other:?}")),
        }
    }

    fn captured(&mut self) -> Result<(), String> {
        self.send(AgentMessage::Captured { token: self.token })?;
        match self.next_step()? {
            CoordinatorMessage::Resume { .. } => Ok(()),
            other => Err(format!("expected resume, the coordinator sent {other:?}")),
        }
    }
}

fn checkpoint_done<P: JobProcess>(
    agent: &mut Agent<P>,
    token: u64,
    generation: Option<u64>,
    reason: Option<String>,
    stored: &mut HashMap<u64, Stored>,
) {
    let mine = stored.remove(&token);
    if mine.is_some() {
        // Only a committed tree may be the base of the next incremental checkpoint.
        agent.checkpoint_outcome(generation.is_some());
    }
    match (generation, mine) {
        (Some(generation), Some(s)) => {
            let pages = agent.page_counts();
            let report = CheckpointReport {
                generation,
                frozen_secs: s.frozen.as_secs_f64(),
                total_secs: s.started.elapsed().as_secs_f64(),
                logical_bytes: s.write.logical_bytes,
                written_bytes: s.write.new_stored_bytes,
                pages_scanned: pages.scanned,
                pages_skipped: pages.skipped,
            };
            agent.say(format_args!(
                "checkpoint committed: generation {generation} (frozen {:.3}s, total {:.3}s, {} bytes captured, {} bytes written by this agent, {} pages scanned, {} skipped)",
                report.frozen_secs, report.total_secs, report.logical_bytes, report.written_bytes, report.pages_scanned, report.pages_skipped
            ));
            agent.record_checkpoint(report);
        }
        (Some(generation), None) => {
            agent.say(format_args!("generation {generation} committed"));
        }
        (None, _) => {
            agent.count_failed_checkpoint();
            agent.say(format_args!(
                "checkpoint {token} failed, nothing committed: {}",
                reason.as_deref().unwrap_or("no reason given")
            ));
        }
    }
}

/// SIGUSR1: asks the coordinator to checkpoint the whole computation.
fn request_checkpoint<P: JobProcess>(agent: &Agent<P>, addr: &CoordinatorAddress, connected: bool) {
    if !connected {
        eprintln!("cairn: warning: no coordinator any more; checkpoint request ignored");
        return;
    }
    let answer = CommandClient::connect(addr)
        .and_then(|mut c| c.request(&Request::Checkpoint { wait: false }));
    match answer {
        Ok(Response::CheckpointStarted { token }) => agent.say(format_args!(
            "asked the coordinator: checkpoint {token} started"
        )),
        Ok(Response::Refused { reason, .. }) => {
            agent.say(format_args!("checkpoint request refused: {reason}"))
        }
        Ok(other) => agent.say(format_args!("checkpoint request: {other:?}")),
        Err(e) => eprintln!("cairn: warning: asking the coordinator for a checkpoint: {e}"),
    }
}
