//! Reports of what an agent did: one per checkpoint, one for the whole run.

use serde::Serialize;

use super::exit::ProgramExit;

/// What one committed checkpoint cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckpointReport {
    /// The generation number it was committed as.
    pub generation: u64,
    /// How long the program was frozen, in seconds.
    pub frozen_secs: f64,
    /// From the request to the committed generation, in seconds.
    pub total_secs: f64,
    /// Bytes of memory and files captured (logical, before deduplication).
    pub logical_bytes: u64,
    /// Bytes newly written to the store (after deduplication and compression).
    pub written_bytes: u64,
    /// Memory pages read from the program and hashed.
    pub pages_scanned: u64,
    /// Memory pages of captured mappings not read (proven unchanged, or not resident).
    pub pages_skipped: u64,
}

/// How the agent's job ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum JobEnd {
    /// The program ended on its own (or was killed by someone).
    Exited {
        /// How it ended.
        status: ProgramExit,
    },
    /// `cairn run`: a final checkpoint was committed and the program was stopped.
    Checkpointed {
        /// The final generation.
        generation: u64,
    },
}

/// The final report of an agent: printed by the CLI (`--json` for machines).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentReport {
    /// The job name.
    pub job: String,
    /// The generation the program was restored from, if it was restarted.
    pub restored_from: Option<u64>,
    /// How the job ended.
    #[serde(flatten)]
    pub end: JobEnd,
    /// The checkpoints committed by this agent, in order.
    pub checkpoints: Vec<CheckpointReport>,
    /// Checkpoints that were attempted but failed or were abandoned.
    pub failed_checkpoints: u32,
}
