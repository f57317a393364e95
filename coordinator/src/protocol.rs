//! The wire protocol between the coordinator, its agents and `cairn command`.
//!
//! Every message travels in a versioned, length-prefixed frame ([`frame`]) whose payload is
//! JSON. A connection starts with the handshake ([`ServerHandshake`], [`ClientHandshake`]);
//! after it, a command client sends [`Request`]s and gets one [`Response`] each, and an agent
//! sends [`AgentMessage`]s and receives [`CoordinatorMessage`]s. docs/coordinator.md shows the
//! exchanges.

pub mod frame;

use serde::{Deserialize, Serialize};

pub use cairn_store::{GenerationId, StreamRef, WriteStats};

/// What a peer is, declared in its [`ClientHandshake::Auth`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `cairn command` and other controlling clients.
    Command,
    /// An agent owning one launched program tree.
    Agent,
}

/// Handshake messages from the coordinator.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerHandshake {
    /// First frame on every connection: a fresh nonce to answer.
    Challenge {
        /// 64 hex digits.
        nonce: String,
    },
    /// The client proved it holds the secret; `proof` proves the coordinator does too.
    Accepted {
        /// 64 hex digits.
        proof: String,
    },
    /// The handshake failed; the connection is closed after this frame.
    Rejected {
        /// One line saying why.
        reason: String,
    },
}

/// Handshake message from a client or agent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientHandshake {
    /// Answer to the challenge.
    Auth {
        /// What the peer is.
        role: Role,
        /// The peer's own nonce (64 hex digits), covered by both proofs.
        nonce: String,
        /// Keyed hash proving the peer holds the secret (64 hex digits).
        proof: String,
    },
}

/// A request of `cairn command` (or the coordinator's own stdin).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Is a computation running, and what is the coordinator doing?
    Status,
    /// The registered agents.
    List,
    /// Checkpoint the computation; with `wait`, answer only once committed or failed.
    Checkpoint {
        /// Block until the generation is committed (`--bcheckpoint`).
        wait: bool,
    },
    /// Kill the computation's programs; the coordinator keeps running.
    Kill,
    /// Kill the programs and stop the coordinator.
    Quit,
    /// Set the periodic checkpoint interval; 0 disables it.
    SetInterval {
        /// Seconds between checkpoints.
        secs: u64,
    },
}

/// Why a request was refused.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No agent is registered.
    NoComputation,
    /// A checkpoint is already running.
    Busy,
    /// The coordinator has no store to commit into.
    NoStore,
    /// The coordinator is shutting down.
    ShuttingDown,
}

/// The coordinator's answer to one [`Request`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(StatusReport),
    /// Answer to [`Request::List`].
    List {
        /// One entry per registered agent.
        agents: Vec<AgentInfo>,
    },
    /// A checkpoint was started (answer to a non-waiting checkpoint).
    CheckpointStarted {
        /// Token of the attempt.
        token: u64,
    },
    /// A checkpoint was committed (answer to a waiting checkpoint).
    CheckpointCommitted(CommitReport),
    /// A checkpoint failed; nothing was committed and every program resumed.
    CheckpointFailed {
        /// Token of the attempt.
        token: u64,
        /// One line saying why.
        reason: String,
    },
    /// The request was refused without doing anything.
    Refused {
        /// The kind of refusal (scripts may test it).
        kind: Refusal,
        /// One line saying why.
        reason: String,
    },
    /// The request was done.
    Done {
        /// One line saying what was done.
        message: String,
    },
    /// The request could not be understood.
    Error {
        /// One line saying why.
        message: String,
    },
}

/// What [`Request::Status`] reports.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// True when at least one agent is registered.
    pub running: bool,
    /// The computation's job name, once an agent registered.
    pub job: Option<String>,
    /// Number of registered agents.
    pub agents: usize,
    /// Token of the checkpoint in progress, if any.
    pub checkpoint_in_progress: Option<u64>,
    /// Generation committed most recently by this coordinator.
    pub last_generation: Option<GenerationId>,
    /// Periodic checkpoint interval in seconds (0 = off).
    pub interval_secs: u64,
    /// The store generations are committed into.
    pub store: Option<String>,
    /// Process id of the coordinator.
    pub pid: u32,
    /// TCP port the coordinator listens on.
    pub port: u16,
}

/// One registered agent, as [`Request::List`] reports it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AgentInfo {
    /// The agent's registration.
    #[serde(flatten)]
    pub registration: Registration,
    /// Peer address of its connection.
    pub address: String,
    /// Seconds since it registered.
    pub connected_secs: u64,
    /// True while it owes the coordinator a checkpoint reply.
    pub checkpointing: bool,
}

/// What a committed checkpoint cost; also the structured log line of the coordinator.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CommitReport {
    /// Token of the attempt.
    pub token: u64,
    /// The committed generation.
    pub generation: GenerationId,
    /// The job it belongs to.
    pub job: String,
    /// Number of agents in it.
    pub agents: usize,
    /// Wall time from request to commit, in milliseconds.
    pub duration_ms: u64,
    /// Longest time any program was frozen, in milliseconds.
    pub frozen_ms: u64,
    /// Logical bytes captured by all agents.
    pub logical_bytes: u64,
    /// New bytes written to the store by all agents and the coordinator.
    pub bytes_written: u64,
    /// Memory pages read from the programs, summed over all agents.
    #[serde(default)]
    pub pages_scanned: u64,
    /// Memory pages not read while frozen (proven unchanged or not resident), summed.
    #[serde(default)]
    pub pages_skipped: u64,
}

/// An agent's identity, sent once after the handshake.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Job name; every agent of one computation must use the same.
    pub job: String,
    /// Host the agent runs on.
    pub host: String,
    /// Process id of the agent (or its program) on that host.
    pub pid: u32,
    /// Unique id of the agent within the computation; names its subtree `agents/<id>/`.
    pub agent_id: String,
    /// The store the agent writes into, if it knows one; used when the coordinator has none.
    #[serde(default)]
    pub store: Option<String>,
    /// The agent takes part in the global cut: it answers a checkpoint with `frozen`,
    /// `drained` and `captured` and waits for the coordinator between them (every agent of
    /// this build does; an agent without it answers `checkpoint_stored` at once).
    #[serde(default)]
    pub barrier: bool,
}

/// One TCP connection end held by a process of an agent's job: its `getsockname` and
/// `getpeername` (IPv4-mapped addresses written as IPv4).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The local address, `ip:port` or `[ip6]:port`.
    pub local: String,
    /// The peer address.
    pub peer: String,
}

/// What an agent's checkpoint cost (summed into the generation's statistics).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct AgentStats {
    /// The statistics of the agent's store writer(s) (`Writer::finish`).
    pub write: WriteStats,
    /// How long the programs were frozen, in milliseconds.
    pub frozen_ms: u64,
    /// Memory pages examined.
    pub pages_scanned: u64,
    /// Memory pages skipped (never touched or unchanged).
    pub pages_skipped: u64,
}

/// Messages from an agent to the coordinator.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// First message after the handshake.
    Register(Registration),
    /// The agent's image is durable in the store (its writer finished).
    CheckpointStored {
        /// The token of the request being answered.
        token: u64,
        /// Root of the agent's subtree (becomes `agents/<agent-id>`).
        root: StreamRef,
        /// What it cost.
        stats: AgentStats,
    },
    /// Barrier, step 1: the agent's programs are frozen; these are their TCP connections.
    Frozen {
        /// The token of the checkpoint.
        token: u64,
        /// Every connected TCP socket of the agent's programs.
        endpoints: Vec<Endpoint>,
    },
    /// Barrier, step 2: every connection to another agent of the job has delivered all the
    /// data this agent's programs sent on it (its send queues are empty).
    Drained {
        /// The token of the checkpoint.
        token: u64,
    },
    /// Barrier, step 3: the agent's image is captured (the programs stay frozen until
    /// `resume`).
    Captured {
        /// The token of the checkpoint.
        token: u64,
    },
    /// The agent could not checkpoint; the whole checkpoint is abandoned.
    CheckpointFailed {
        /// The token of the request being answered.
        token: u64,
        /// One line saying why.
        reason: String,
    },
}

/// Messages from the coordinator to an agent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoordinatorMessage {
    /// Registration accepted.
    Registered {
        /// The computation's job name.
        job: String,
    },
    /// Freeze, capture into the store, answer with `CheckpointStored` or `CheckpointFailed`,
    /// then let the programs run again.
    Checkpoint {
        /// Token to echo in the answer.
        generation_token: u64,
    },
    /// Barrier: every participant is frozen. Wait until the connections to `peers` (the
    /// other agents' endpoints) have delivered everything, then answer `drained`.
    Drain {
        /// The token of the checkpoint.
        token: u64,
        /// The TCP connection ends of the other agents of the checkpoint.
        peers: Vec<Endpoint>,
    },
    /// Barrier: every participant has drained; capture now, then answer `captured`.
    Capture {
        /// The token of the checkpoint.
        token: u64,
    },
    /// Barrier: every participant has captured; let the programs run again, make the image
    /// durable and answer `checkpoint_stored`.
    Resume {
        /// The token of the checkpoint.
        token: u64,
    },
    /// Outcome of a checkpoint the agent took part in.
    CheckpointDone {
        /// The token of the attempt.
        token: u64,
        /// The committed generation, or `None` when nothing was committed.
        generation: Option<GenerationId>,
        /// Why nothing was committed, if so.
        reason: Option<String>,
    },
    /// Kill the program tree and exit.
    Kill,
    /// The coordinator is shutting down: kill the program tree and exit.
    Quit,
    /// The last message could not be accepted (the connection stays open unless said).
    Error {
        /// One line saying why.
        message: String,
    },
}
