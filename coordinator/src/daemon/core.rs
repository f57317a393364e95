//! The coordinator's state machine: the agent registry and the one checkpoint in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cairn_store::Store;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;

use super::Config;
use crate::auth::hostname;
use crate::commit::{commit_generation, AgentPart, CommitRequest, Committed};
use crate::protocol::{
    AgentInfo, AgentMessage, AgentStats, CommitReport, CoordinatorMessage, Endpoint, GenerationId,
    Refusal, Registration, Request, Response, StatusReport, StreamRef,
};

/// Identifies one agent connection for the life of the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ConnId(u64);

impl ConnId {
    pub(super) fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Everything that can happen to the coordinator.
pub(super) enum Event {
    /// An authenticated agent asks to join.
    Register {
        conn: ConnId,
        peer: SocketAddr,
        registration: Registration,
        outbox: mpsc::UnboundedSender<CoordinatorMessage>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A message from a registered agent.
    FromAgent { conn: ConnId, msg: AgentMessage },
    /// A registered agent sent a frame that could not be decoded.
    AgentProtocolError { conn: ConnId, message: String },
    /// A registered agent's connection ended.
    AgentGone { conn: ConnId },
    /// A connection was refused before it could say who it is (failed authentication, a
    /// malformed or late handshake).
    Refused { peer: SocketAddr, reason: String },
    /// A command (network client or stdin).
    Request {
        req: Request,
        reply: oneshot::Sender<Response>,
    },
    /// Stop serving without telling the agents to stop (signal to the coordinator).
    Stop { reason: String },
    /// The blocking commit of a checkpoint finished.
    CommitDone {
        token: u64,
        store: Option<Store>,
        result: Result<Committed, String>,
    },
}

struct Agent {
    registration: Registration,
    peer: SocketAddr,
    since: Instant,
    outbox: mpsc::UnboundedSender<CoordinatorMessage>,
}

/// Where the barrier of a checkpoint stands (docs/coordinator.md, "The global cut").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for every barrier participant to be frozen (`frozen`).
    Freezing,
    /// Waiting for their connections to other agents to be drained (`drained`).
    Draining,
    /// Waiting for their images to be captured (`captured`).
    Capturing,
    /// Everyone runs again; waiting for the images to be durable (`checkpoint_stored`).
    Storing,
}

struct Pending {
    token: u64,
    /// Participants that take part in the barrier (frozen together, resumed together).
    barrier: BTreeSet<ConnId>,
    phase: Phase,
    /// Barrier participants that have not reached the current phase's step yet.
    phase_wait: BTreeSet<ConnId>,
    /// The TCP connection ends each barrier participant reported when frozen.
    endpoints: BTreeMap<ConnId, Vec<Endpoint>>,
    started: Instant,
    started_wall: SystemTime,
    job: String,
    /// Agents taking part, fixed when the checkpoint starts.
    participants: Vec<ConnId>,
    /// Participants that have not answered yet.
    awaiting: BTreeSet<ConnId>,
    stored: BTreeMap<ConnId, (StreamRef, AgentStats)>,
    /// Registrations of participants, kept even if they leave during the commit.
    registrations: BTreeMap<ConnId, Registration>,
    /// Clients blocked in `--bcheckpoint`.
    waiters: Vec<oneshot::Sender<Response>>,
    committing: bool,
    /// When the agents' answers are overdue (`--checkpoint-timeout`).
    deadline: Option<TokioInstant>,
}

pub(super) struct Core {
    config: Config,
    port: u16,
    agents: BTreeMap<ConnId, Agent>,
    job: Option<String>,
    pending: Option<Pending>,
    next_token: u64,
    last_generation: Option<GenerationId>,
    store: Option<Store>,
    had_agent: bool,
    quitting: bool,
    next_tick: Option<TokioInstant>,
    host: String,
    /// Where blocking commit tasks post their result (the core's own event queue).
    events: mpsc::UnboundedSender<Event>,
}

impl Core {
    pub(super) fn new(config: Config, port: u16, events: mpsc::UnboundedSender<Event>) -> Core {
        Core {
            config,
            port,
            agents: BTreeMap::new(),
            job: None,
            pending: None,
            next_token: 1,
            last_generation: None,
            store: None,
            had_agent: false,
            quitting: false,
            next_tick: None,
            host: hostname(),
            events,
        }
    }

    pub(super) async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        self.reset_tick();
        loop {
            if self.should_stop() {
                break;
            }
            let tick = self.next_tick;
            let deadline = self
                .pending
                .as_ref()
                .filter(|p| !p.committing)
                .and_then(|p| p.deadline);
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => break,
                },
                _ = sleep_until_opt(tick) => self.periodic(),
                _ = sleep_until_opt(deadline) => self.overdue(),
            }
        }
        // Dropping `self` drops every agent's outbox, which ends their writer tasks after
        // the last queued message (Quit) is sent.
    }

    fn should_stop(&self) -> bool {
        if self.pending.as_ref().is_some_and(|p| p.committing) {
            return false;
        }
        self.quitting || (self.config.exit_on_last && self.had_agent && self.agents.is_empty())
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Register {
                conn,
                peer,
                registration,
                outbox,
                reply,
            } => self.register(conn, peer, registration, outbox, reply),
            Event::FromAgent { conn, msg } => self.on_agent_message(conn, msg),
            Event::AgentProtocolError { conn, message } => {
                if let Some(agent) = self.agents.get(&conn) {
                    let _ = agent.outbox.send(CoordinatorMessage::Error { message });
                }
            }
            Event::AgentGone { conn } => self.agent_gone(conn),
            Event::Refused { peer, reason } => self.config.log.event(
                "connection_refused",
                serde_json::json!({ "peer": peer.to_string(), "reason": reason }),
            ),
            Event::Stop { reason } => {
                self.quitting = true;
                if self.pending.as_ref().is_some_and(|p| !p.committing) {
                    self.fail_pending(format!("the coordinator was stopped ({reason})"));
                }
                self.config
                    .log
                    .event("stopped", serde_json::json!({ "reason": reason }));
            }
            Event::Request { req, reply } => self.request(req, reply),
            Event::CommitDone {
                token,
                store,
                result,
            } => self.commit_done(token, store, result),
        }
    }

    fn register(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        registration: Registration,
        outbox: mpsc::UnboundedSender<CoordinatorMessage>,
        reply: oneshot::Sender<Result<(), String>>,
    ) {
        let refusal = if self.quitting {
            Some("the coordinator is shutting down".to_string())
        } else if !valid_agent_id(&registration.agent_id) {
            Some(format!(
                "invalid agent id {:?} (use letters, digits, '.', '_', '-')",
                registration.agent_id
            ))
        } else if registration.job.is_empty() {
            Some("empty job name".to_string())
        } else if self
            .job
            .as_ref()
            .is_some_and(|j| *j != registration.job && !self.agents.is_empty())
        {
            Some(format!(
                "this coordinator runs job {:?}, not {:?}",
                self.job.as_deref().unwrap_or_default(),
                registration.job
            ))
        } else if self
            .agents
            .values()
            .any(|a| a.registration.agent_id == registration.agent_id)
        {
            Some(format!(
                "agent id {:?} is already registered",
                registration.agent_id
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.config.log.event(
                "agent_refused",
                serde_json::json!({
                    "agent_id": registration.agent_id, "job": registration.job,
                    "peer": peer.to_string(), "reason": reason,
                }),
            );
            let _ = reply.send(Err(reason));
            return;
        }
        let job = registration.job.clone();
        if outbox
            .send(CoordinatorMessage::Registered { job: job.clone() })
            .is_err()
        {
            return;
        }
        if reply.send(Ok(())).is_err() {
            return;
        }
        self.config.log.event(
            "agent_registered",
            serde_json::json!({
                "agent_id": registration.agent_id, "job": job, "host": registration.host,
                "pid": registration.pid, "peer": peer.to_string(),
            }),
        );
        self.job = Some(job);
        self.had_agent = true;
        self.agents.insert(
            conn,
            Agent {
                registration,
                peer,
                since: Instant::now(),
                outbox,
            },
        );
    }

    fn agent_gone(&mut self, conn: ConnId) {
        let Some(agent) = self.agents.remove(&conn) else {
            return;
        };
        self.config.log.event(
            "agent_gone",
            serde_json::json!({ "agent_id": agent.registration.agent_id }),
        );
        let in_checkpoint = self
            .pending
            .as_ref()
            .is_some_and(|p| !p.committing && p.participants.contains(&conn));
        if in_checkpoint {
            self.fail_pending(format!(
                "agent {} disconnected during the checkpoint",
                agent.registration.agent_id
            ));
        }
    }

    fn on_agent_message(&mut self, conn: ConnId, msg: AgentMessage) {
        let Some(agent) = self.agents.get(&conn) else {
            return;
        };
        let agent_id = agent.registration.agent_id.clone();
        match msg {
            AgentMessage::Register(_) => {
                let _ = agent.outbox.send(CoordinatorMessage::Error {
                    message: "already registered".to_string(),
                });
            }
            AgentMessage::Frozen { token, endpoints } => {
                if let Some(p) = self.barrier_step(conn, token, Phase::Freezing) {
                    p.endpoints.insert(conn, endpoints);
                    self.advance_barrier();
                }
            }
            AgentMessage::Drained { token } => {
                if self.barrier_step(conn, token, Phase::Draining).is_some() {
                    self.advance_barrier();
                }
            }
            AgentMessage::Captured { token } => {
                if self.barrier_step(conn, token, Phase::Capturing).is_some() {
                    self.advance_barrier();
                }
            }
            AgentMessage::CheckpointStored { token, root, stats } => {
                let Some(p) = self.pending.as_mut().filter(|p| p.token == token) else {
                    return; // a late answer to an abandoned checkpoint
                };
                if !p.awaiting.remove(&conn) {
                    return;
                }
                p.stored.insert(conn, (root, stats));
                if p.awaiting.is_empty() {
                    self.start_commit();
                }
            }
            AgentMessage::CheckpointFailed { token, reason } => {
                if self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.token == token && p.awaiting.contains(&conn))
                {
                    self.fail_pending(format!("agent {agent_id} failed: {reason}"));
                }
            }
        }
    }

    /// The checkpoint in flight when `conn` reached the step of `phase` of checkpoint `token`
    /// (a late or repeated answer gives `None`).
    fn barrier_step(&mut self, conn: ConnId, token: u64, phase: Phase) -> Option<&mut Pending> {
        let p = self
            .pending
            .as_mut()
            .filter(|p| p.token == token && p.phase == phase && !p.committing)?;
        p.phase_wait.remove(&conn).then_some(p)
    }

    /// Every barrier participant reached the current step: tell them the next one.
    fn advance_barrier(&mut self) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        if !p.phase_wait.is_empty() {
            return;
        }
        let token = p.token;
        let next = match p.phase {
            Phase::Freezing => Phase::Draining,
            Phase::Draining => Phase::Capturing,
            Phase::Capturing | Phase::Storing => Phase::Storing,
        };
        p.phase = next;
        if next != Phase::Storing {
            p.phase_wait = p.barrier.clone();
        }
        for conn in &p.barrier {
            let msg = match next {
                Phase::Draining => CoordinatorMessage::Drain {
                    token,
                    peers: p
                        .endpoints
                        .iter()
                        .filter(|(c, _)| *c != conn)
                        .flat_map(|(_, e)| e.iter().cloned())
                        .collect(),
                },
                Phase::Capturing => CoordinatorMessage::Capture { token },
                _ => CoordinatorMessage::Resume { token },
            };
            if let Some(a) = self.agents.get(conn) {
                let _ = a.outbox.send(msg);
            }
        }
    }

    fn request(&mut self, req: Request, reply: oneshot::Sender<Response>) {
        let response = match req {
            Request::Status => Response::Status(self.status()),
            Request::List => Response::List {
                agents: self.list(),
            },
            Request::Checkpoint { wait } => match self.start_checkpoint() {
                Err(refused) => refused,
                Ok(_) if wait => {
                    if let Some(p) = self.pending.as_mut() {
                        p.waiters.push(reply);
                    }
                    return;
                }
                Ok(token) => Response::CheckpointStarted { token },
            },
            Request::Kill => {
                let n = self.broadcast(CoordinatorMessage::Kill);
                Response::Done {
                    message: format!("kill sent to {n} agent(s)"),
                }
            }
            Request::Quit => {
                let n = self.broadcast(CoordinatorMessage::Quit);
                self.quitting = true;
                if self.pending.as_ref().is_some_and(|p| !p.committing) {
                    self.fail_pending("the coordinator is shutting down".to_string());
                }
                self.config.log.event("quit", serde_json::json!({}));
                Response::Done {
                    message: format!("quitting; {n} agent(s) told to stop"),
                }
            }
            Request::SetInterval { secs } => {
                self.config.interval_secs = secs;
                self.reset_tick();
                Response::Done {
                    message: if secs == 0 {
                        "periodic checkpoints off".to_string()
                    } else {
                        format!("checkpoint interval set to {secs} s")
                    },
                }
            }
        };
        let _ = reply.send(response);
    }

    fn status(&self) -> StatusReport {
        StatusReport {
            running: !self.agents.is_empty(),
            job: self.job.clone(),
            agents: self.agents.len(),
            checkpoint_in_progress: self.pending.as_ref().map(|p| p.token),
            last_generation: self.last_generation,
            interval_secs: self.config.interval_secs,
            store: self.store_path().map(|p| p.display().to_string()),
            pid: std::process::id(),
            port: self.port,
        }
    }

    fn list(&self) -> Vec<AgentInfo> {
        self.agents
            .iter()
            .map(|(conn, a)| AgentInfo {
                registration: a.registration.clone(),
                address: a.peer.to_string(),
                connected_secs: a.since.elapsed().as_secs(),
                checkpointing: self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.awaiting.contains(conn)),
            })
            .collect()
    }

    fn broadcast(&self, msg: CoordinatorMessage) -> usize {
        self.agents
            .values()
            .filter(|a| a.outbox.send(msg.clone()).is_ok())
            .count()
    }

    fn store_path(&self) -> Option<PathBuf> {
        self.config.store.clone().or_else(|| {
            self.agents
                .values()
                .find_map(|a| a.registration.store.as_ref().map(PathBuf::from))
        })
    }

    fn refuse(kind: Refusal, reason: &str) -> Response {
        Response::Refused {
            kind,
            reason: reason.to_string(),
        }
    }

    /// Starts a checkpoint of every registered agent, or says why not.
    fn start_checkpoint(&mut self) -> Result<u64, Response> {
        if self.quitting {
            return Err(Self::refuse(
                Refusal::ShuttingDown,
                "the coordinator is shutting down",
            ));
        }
        if let Some(p) = &self.pending {
            return Err(Self::refuse(
                Refusal::Busy,
                &format!("checkpoint {} is still running", p.token),
            ));
        }
        if self.agents.is_empty() {
            return Err(Self::refuse(
                Refusal::NoComputation,
                "no computation is running (no agent registered)",
            ));
        }
        if self.store_path().is_none() {
            return Err(Self::refuse(
                Refusal::NoStore,
                "the coordinator has no store (start it with --store DIR)",
            ));
        }
        let token = self.next_token;
        self.next_token += 1;
        let participants: Vec<ConnId> = self.agents.keys().copied().collect();
        let registrations = self
            .agents
            .iter()
            .map(|(c, a)| (*c, a.registration.clone()))
            .collect();
        let barrier: BTreeSet<ConnId> = self
            .agents
            .iter()
            .filter(|(_, a)| a.registration.barrier)
            .map(|(c, _)| *c)
            .collect();
        self.pending = Some(Pending {
            token,
            phase: if barrier.is_empty() {
                Phase::Storing
            } else {
                Phase::Freezing
            },
            phase_wait: barrier.clone(),
            barrier,
            endpoints: BTreeMap::new(),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            job: self.job.clone().unwrap_or_default(),
            awaiting: participants.iter().copied().collect(),
            participants,
            stored: BTreeMap::new(),
            registrations,
            waiters: Vec::new(),
            committing: false,
            deadline: (self.config.checkpoint_timeout_secs > 0).then(|| {
                TokioInstant::now() + Duration::from_secs(self.config.checkpoint_timeout_secs)
            }),
        });
        self.config.log.event(
            "checkpoint_started",
            serde_json::json!({ "token": token, "agents": self.agents.len() }),
        );
        self.broadcast(CoordinatorMessage::Checkpoint {
            generation_token: token,
        });
        Ok(token)
    }

    /// Every participant stored its image: commit in a blocking task.
    fn start_commit(&mut self) {
        let store_path = self.store_path();
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        let Some(store_path) = store_path else {
            self.fail_pending("no store to commit into".to_string());
            return;
        };
        p.committing = true;
        let parts = p
            .stored
            .iter()
            .filter_map(|(conn, (root, stats))| {
                p.registrations.get(conn).map(|registration| AgentPart {
                    registration: registration.clone(),
                    root: root.clone(),
                    stats: stats.clone(),
                })
            })
            .collect();
        let request = CommitRequest {
            job: p.job.clone(),
            host: self.host.clone(),
            parts,
            started: p.started_wall,
        };
        let token = p.token;
        let store = self.store.take();
        let commits = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let (store, result) = match store.map(Ok).unwrap_or_else(|| Store::open(&store_path)) {
                Ok(store) => {
                    let result = commit_generation(&store, &request).map_err(|e| e.to_string());
                    (Some(store), result)
                }
                Err(e) => (
                    None,
                    Err(format!("cannot open store {}: {e}", store_path.display())),
                ),
            };
            let _ = commits.send(Event::CommitDone {
                token,
                store,
                result,
            });
        });
    }

    fn commit_done(&mut self, token: u64, store: Option<Store>, result: Result<Committed, String>) {
        if store.is_some() {
            self.store = store;
        }
        if self.pending.as_ref().is_none_or(|p| p.token != token) {
            return;
        }
        let committed = match result {
            Ok(c) => c,
            Err(reason) => {
                self.fail_pending(format!("commit failed: {reason}"));
                return;
            }
        };
        let Some(p) = self.pending.take() else { return };
        let report = CommitReport {
            token,
            generation: committed.generation,
            job: p.job.clone(),
            agents: p.participants.len(),
            duration_ms: duration_ms(p.started.elapsed()),
            frozen_ms: committed.frozen_ms,
            logical_bytes: committed.stats.logical_bytes,
            bytes_written: committed.stats.new_stored_bytes,
            pages_scanned: committed.pages_scanned,
            pages_skipped: committed.pages_skipped,
        };
        self.config.log.event(
            "checkpoint_committed",
            serde_json::to_value(&report).unwrap_or_default(),
        );
        self.last_generation = Some(committed.generation);
        for conn in &p.participants {
            if let Some(a) = self.agents.get(conn) {
                let _ = a.outbox.send(CoordinatorMessage::CheckpointDone {
                    token,
                    generation: Some(committed.generation),
                    reason: None,
                });
            }
        }
        for w in p.waiters {
            let _ = w.send(Response::CheckpointCommitted(report.clone()));
        }
    }

    /// Abandons the checkpoint in flight: nothing is committed, everyone is told.
    fn fail_pending(&mut self, reason: String) {
        let Some(p) = self.pending.take() else { return };
        self.config.log.event(
            "checkpoint_failed",
            serde_json::json!({
                "token": p.token, "reason": reason,
                "duration_ms": duration_ms(p.started.elapsed()),
            }),
        );
        for conn in &p.participants {
            if let Some(a) = self.agents.get(conn) {
                let _ = a.outbox.send(CoordinatorMessage::CheckpointDone {
                    token: p.token,
                    generation: None,
                    reason: Some(reason.clone()),
                });
            }
        }
        for w in p.waiters {
            let _ = w.send(Response::CheckpointFailed {
                token: p.token,
                reason: reason.clone(),
            });
        }
    }

    /// The checkpoint timeout expired before every agent answered.
    fn overdue(&mut self) {
        let Some(p) = self.pending.as_ref().filter(|p| !p.committing) else {
            return;
        };
        let late: Vec<&str> = p
            .awaiting
            .iter()
            .filter_map(|c| p.registrations.get(c))
            .map(|r| r.agent_id.as_str())
            .collect();
        let reason = format!(
            "agent(s) {} did not answer within {} s",
            late.join(", "),
            self.config.checkpoint_timeout_secs
        );
        self.fail_pending(reason);
    }

    fn reset_tick(&mut self) {
        self.next_tick = (self.config.interval_secs > 0)
            .then(|| TokioInstant::now() + Duration::from_secs(self.config.interval_secs));
    }

    fn periodic(&mut self) {
        self.reset_tick();
        if self.agents.is_empty() || self.pending.is_some() {
            return;
        }
        if let Err(Response::Refused { reason, .. }) = self.start_checkpoint() {
            self.config.log.event(
                "periodic_checkpoint_skipped",
                serde_json::json!({ "reason": reason }),
            );
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn sleep_until_opt(when: Option<TokioInstant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Agent ids name a directory in the generation tree: keep them plain.
pub(super) fn valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}
