//! Prune: apply a retention [`Policy`] to the generations of a store (every job, or one)
//! and remove the manifests of the generations it drops. Chunks are reclaimed later by
//! [`crate::sweep`].

use std::collections::BTreeMap;
use std::time::Instant;

use cairn_store::{CheckLevel, Generation, GenerationId, Store};
use serde::Serialize;

use crate::error::GcError;
use crate::retention::{apply, Candidate, Decision, Policy};
use crate::sweep::{sweep, SweepOptions, SweepReport};

/// What to prune.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Only this job (every job when `None`).
    pub job: Option<String>,
    /// The retention rules (at least one must be given).
    pub policy: Policy,
    /// Decide and report, remove nothing.
    pub dry_run: bool,
}

/// What prune decided and did.
#[derive(Clone, Debug, Serialize)]
pub struct PruneReport {
    /// One decision per generation, grouped by job, newest first within a job.
    pub decisions: Vec<Decision>,
    /// Generations whose manifests were removed (empty on a dry run).
    pub removed: Vec<GenerationId>,
    /// True when nothing was removed on purpose.
    pub dry_run: bool,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

impl PruneReport {
    /// Number of generations kept.
    pub fn kept(&self) -> usize {
        self.decisions.iter().filter(|d| d.keep).count()
    }

    /// Number of generations dropped (or that would be, on a dry run).
    pub fn dropped(&self) -> usize {
        self.decisions.len() - self.kept()
    }
}

/// The newest generation of the job that passes a structure check, and the next older one
/// that does (`gens` oldest first, all of one job).
fn protected(store: &Store, gens: &[Generation]) -> (Option<GenerationId>, Option<GenerationId>) {
    let mut found = gens
        .iter()
        .rev()
        .filter(|g| store.check_generation(g, CheckLevel::Structure).is_ok())
        .map(|g| g.id);
    (found.next(), found.next())
}

fn decide(store: &Store, job: Option<&str>, policy: &Policy) -> Result<Vec<Decision>, GcError> {
    let mut by_job: BTreeMap<String, Vec<Generation>> = BTreeMap::new();
    for g in store.generations(job)? {
        by_job.entry(g.job.clone()).or_default().push(g);
    }
    if let Some(j) = job {
        if by_job.is_empty() {
            return Err(GcError::Store(cairn_store::StoreError::UnknownJob(
                j.to_string(),
            )));
        }
    }
    let mut out = Vec::new();
    for (job, gens) in by_job {
        let (newest, fallback) = protected(store, &gens);
        let cands: Vec<Candidate> = gens
            .iter()
            .map(|g| Candidate {
                id: g.id,
                time_ms: g.time_ms,
            })
            .collect();
        out.extend(apply(&job, &cands, policy, newest, fallback));
    }
    Ok(out)
}

/// What `policy` would keep and drop, and why; nothing is changed.
pub fn plan(store: &Store, job: Option<&str>, policy: &Policy) -> Result<Vec<Decision>, GcError> {
    if policy.is_empty() {
        return Err(GcError::EmptyPolicy);
    }
    decide(store, job, policy)
}

/// The reasons `cairn generations` shows: with a policy, the same decisions as prune; with
/// an empty policy, only the protections (newest consistent, fallback), nothing dropped.
pub fn explain(
    store: &Store,
    job: Option<&str>,
    policy: &Policy,
) -> Result<Vec<Decision>, GcError> {
    let mut d = decide(store, job, policy)?;
    if policy.is_empty() {
        for x in &mut d {
            x.keep = true;
        }
    }
    Ok(d)
}

/// Apply the policy: remove the manifests of the generations it drops.
pub fn prune(store: &Store, opts: &PruneOptions) -> Result<PruneReport, GcError> {
    let t = Instant::now();
    let decisions = plan(store, opts.job.as_deref(), &opts.policy)?;
    let mut drop: Vec<GenerationId> = decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect();
    drop.sort();
    let removed = if opts.dry_run {
        Vec::new()
    } else {
        store.maintenance().forget_generations(&drop)?
    };
    Ok(PruneReport {
        decisions,
        removed,
        dry_run: opts.dry_run,
        elapsed_ms: t.elapsed().as_millis() as u64,
    })
}

/// What [`prune_after_checkpoint`] did.
#[derive(Clone, Debug, Serialize)]
pub struct AfterCheckpoint {
    /// The prune of the job.
    pub prune: PruneReport,
    /// The sweep that followed.
    pub sweep: SweepReport,
}

/// Called by the agent after each committed checkpoint of `job` (`cairn run --keep-last N`):
/// prune the job with `policy`, then sweep the store with the default options (grace period
/// from `CAIRN_GC_GRACE` or [`crate::DEFAULT_GRACE`]), so disk use stays bounded. Safe while
/// other checkpoints run.
pub fn prune_after_checkpoint(
    store: &Store,
    job: &str,
    policy: &Policy,
) -> Result<AfterCheckpoint, GcError> {
    let prune = prune(
        store,
        &PruneOptions {
            job: Some(job.to_string()),
            policy: policy.clone(),
            dry_run: false,
        },
    )?;
    let sweep = sweep(store, &SweepOptions::from_env()?)?;
    Ok(AfterCheckpoint { prune, sweep })
}
