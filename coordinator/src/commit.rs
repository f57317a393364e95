//! Building and committing one checkpoint generation from the subtrees the agents stored.
//!
//! The root tree is the engine's one generation layout (`cairn_engine::layout`): `meta.json`
//! plus `agents/<agent-id>`, one subtree per agent. Nothing is committed unless every agent's
//! subtree is present.

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_engine::layout::{write_root, AgentDetail, Meta, CHECKPOINT_KIND};
use cairn_store::{GenerationId, GenerationInfo, Store, StoreError, StreamRef, WriteStats};

use crate::protocol::{AgentStats, Registration};

/// One agent's contribution to a generation.
#[derive(Debug, Clone)]
pub struct AgentPart {
    /// Who the agent is.
    pub registration: Registration,
    /// Root of the subtree it stored.
    pub root: StreamRef,
    /// What its capture cost.
    pub stats: AgentStats,
}

/// Everything the commit needs besides the store.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The job the generation belongs to.
    pub job: String,
    /// Host of the coordinator (recorded in meta.json).
    pub host: String,
    /// Every agent of the computation, each with its stored subtree.
    pub parts: Vec<AgentPart>,
    /// When the checkpoint was requested.
    pub started: SystemTime,
}

/// The outcome of a successful commit.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The new generation.
    pub generation: GenerationId,
    /// Writer statistics summed over every agent and the coordinator's own writer.
    pub stats: WriteStats,
    /// Longest time any agent's programs were frozen, in milliseconds.
    pub frozen_ms: u64,
    /// Memory pages read from the programs, summed over every agent.
    pub pages_scanned: u64,
    /// Memory pages skipped (proven unchanged or not resident), summed over every agent.
    pub pages_skipped: u64,
}

/// Writes `meta.json` and the root tree, then commits the generation (the atomic step).
pub fn commit_generation(store: &Store, req: &CommitRequest) -> Result<Committed, StoreError> {
    let mut meta = Meta::new(
        &req.job,
        &req.host,
        req.parts
            .iter()
            .map(|p| p.registration.agent_id.clone())
            .collect(),
    );
    meta.agent_details = req
        .parts
        .iter()
        .map(|p| AgentDetail {
            id: p.registration.agent_id.clone(),
            host: p.registration.host.clone(),
            pid: p.registration.pid,
        })
        .collect();
    let mut writer = store.writer()?;
    let agents = req
        .parts
        .iter()
        .map(|p| (p.registration.agent_id.clone(), p.root.clone()))
        .collect();
    let root = write_root(&mut writer, &meta, agents)?;
    let own = writer.finish()?;

    let mut stats = own.clone();
    let mut frozen_ms = 0;
    let (mut pages_scanned, mut pages_skipped) = (0, 0);
    for p in &req.parts {
        stats.add(&p.stats.write);
        frozen_ms = frozen_ms.max(p.stats.frozen_ms);
        pages_scanned += p.stats.pages_scanned;
        pages_skipped += p.stats.pages_skipped;
    }
    let info = GenerationInfo {
        kind: CHECKPOINT_KIND.to_string(),
        start_ms: epoch_ms(req.started),
        end_ms: epoch_ms(SystemTime::now()),
        frozen_ms,
        stats: stats.clone(),
        pages_scanned,
        pages_skipped,
    };
    let generation = store.commit(&req.job, &root, info)?;
    Ok(Committed {
        generation,
        stats,
        frozen_ms,
        pages_scanned,
        pages_skipped,
    })
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
