//! The one restart path, for `cairn restart`, `cairn run` and the coordinated restart: take
//! the job's newest generation, rebuild its program (lazily where allowed), and when the
//! generation turns out to be damaged — while it is read, or after the program resumed —
//! fall back to the next older one. Every path prints the same messages.
//!
//! Nothing is checked ahead: the restore reads every node and data chunk it needs and
//! verifies each as it reads it, before the program runs again; a generation found damaged
//! then (a corrupt or missing chunk, node or pack) is abandoned, its half-built job killed,
//! and the previous one tried (docs/performance.md, "restart: no separate structure check").
//! A generation named by the user (`--generation N`) is never replaced by another one.

use std::sync::Arc;

use cairn_store::{Generation, GenerationId, Store, StoreError, LOST_MANIFEST};

use crate::agent::progress::Progress;
use crate::agent::sandbox_job::SandboxJob;
use crate::agent::{AgentError, AgentReport};
use crate::layout::{agent_base, read_image, read_meta};
use crate::store_io::StoreSource;

/// Why a recovery failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The store refused or failed; [`StoreError::UnknownJob`] when the job has no
    /// generation, [`StoreError::NoConsistentGeneration`] when none is sound.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Rebuilding the program failed for a reason other than damaged data.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// Bad input from the user (a damaged named generation, another job's generation, ...):
    /// exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The named generation failed after its program resumed (lazy restore).
    #[error("generation {generation} failed after the program resumed: {why}")]
    FailedAfterResume {
        /// The generation.
        generation: u64,
        /// Why a page could not be restored.
        why: String,
    },
}

/// How the memory of a rebuilt program is brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Large private mappings after the program resumed, where the kernel allows it
    /// (solo agents).
    Lazy,
    /// Everything before the program runs (under a coordinator).
    Eager,
}

/// Which agent of a generation to rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentChoice {
    /// The generation's only agent; a generation of several is a usage error (a solo
    /// restart).
    Only,
    /// This agent (`--agent-id`).
    Named(String),
    /// The only agent, or — when there are several — none here: the caller restarts each of
    /// them (their data is verified first, so that a damaged generation is passed over).
    OnlyOrEach,
}

/// The line announcing each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// `cairn: restarting job J from generation N`.
    Restarting,
    /// `cairn: resuming job J from generation N` (`cairn run`).
    Resuming,
    /// `cairn: restarting agent A of job J from generation N` (coordinated).
    RestartingAgent,
}

/// What to recover, and how.
pub struct Recovery<'a> {
    /// The store.
    pub store: &'a Store,
    /// The job.
    pub job: &'a str,
    /// `--generation N`: that generation or an error naming it; `None`: the newest sound one.
    pub generation: Option<u64>,
    /// Lazy or eager memory.
    pub memory: Memory,
    /// Which agent.
    pub agent: AgentChoice,
    /// The line announcing each attempt.
    pub announce: Announce,
}

/// A program rebuilt from a generation, not yet handed to an agent.
pub struct Restored {
    /// The generation it came from.
    pub generation: Generation,
    /// The agent id it ran under.
    pub agent_id: String,
    /// The program.
    pub process: SandboxJob,
}

/// The outcome of [`Recovery::recover`].
pub enum Recovered {
    /// One program rebuilt.
    One(Box<Restored>),
    /// A sound generation of several agents, none rebuilt here ([`AgentChoice::OnlyOrEach`]).
    Each {
        /// The generation.
        generation: Box<Generation>,
        /// Its agents.
        agents: Vec<String>,
    },
}

/// The outcome of [`Recovery::recover_and_run`].
pub enum Ran {
    /// The rebuilt program ran under its agent; its report.
    Agent(AgentReport),
    /// See [`Recovered::Each`].
    Each {
        /// The generation.
        generation: Generation,
        /// Its agents.
        agents: Vec<String>,
    },
}

impl Ran {
    /// The agent's report; a generation of several agents (only with
    /// [`AgentChoice::OnlyOrEach`]) is a usage error here.
    pub fn into_report(self) -> Result<AgentReport, RecoveryError> {
        match self {
            Ran::Agent(report) => Ok(report),
            Ran::Each { generation, agents } => Err(several_agents(&generation, agents.len())),
        }
    }
}

/// A generation of several agents where one was expected.
fn several_agents(g: &Generation, n: usize) -> RecoveryError {
    RecoveryError::Usage(format!(
        "generation {} holds {n} agents; restart it through a coordinator",
        g.id.0
    ))
}

/// Why one generation could not be rebuilt.
enum Attempt {
    /// Its data turned out to be damaged; an older generation may still be sound.
    Damaged(String),
    /// Anything else (the program, the machine, the user's arguments): no fallback.
    Failed(RecoveryError),
}

/// The warning printed for every generation passed over.
fn warn_skipped(id: u64, reason: &str) {
    eprintln!("cairn: warning: skipped generation {id}: {reason}");
}

/// The warning printed when generation `id` failed after its program resumed.
fn warn_failed_after_resume(id: u64, why: &str) {
    eprintln!(
        "cairn: warning: generation {id} failed after the program resumed ({why}); the job was killed, restarting it from an older generation"
    );
}

impl Recovery<'_> {
    /// Recovers, runs the rebuilt program with `run`, and when its lazy restore fails after
    /// it resumed (the job was killed then; docs/capture-restore.md, "Lazy restore"), warns
    /// and recovers again from an older generation — not when the generation was named.
    /// `before_restore` is called before a program is rebuilt (see [`Recovery::recover`]).
    pub fn recover_and_run<E: From<RecoveryError>>(
        &self,
        before_restore: &mut dyn FnMut(&Generation, &str) -> Result<(), E>,
        run: &mut dyn FnMut(Restored) -> Result<AgentReport, E>,
    ) -> Result<Ran, E> {
        let mut below = None;
        loop {
            let restored = match self.recover_below(below, before_restore)? {
                Recovered::One(r) => *r,
                Recovered::Each { generation, agents } => {
                    return Ok(Ran::Each {
                        generation: *generation,
                        agents,
                    })
                }
            };
            let id = restored.generation.id.0;
            let failed = lazy_failure(&restored.process);
            let report = run(restored)?;
            match failed() {
                Some(why) if self.generation.is_some() => {
                    return Err(RecoveryError::FailedAfterResume {
                        generation: id,
                        why,
                    }
                    .into())
                }
                Some(why) => {
                    warn_failed_after_resume(id, &why);
                    below = Some(id);
                }
                None => return Ok(Ran::Agent(report)),
            }
        }
    }

    /// Rebuilds the program of the job's newest sound generation (or of the named one).
    /// Each generation passed over is reported on stderr with the reason. `before_restore`
    /// is called with the generation and agent id just before the program is rebuilt (a
    /// coordinated agent registers there, so a refused registration starts nothing); an
    /// error from it ends the recovery.
    pub fn recover<E: From<RecoveryError>>(
        &self,
        before_restore: &mut dyn FnMut(&Generation, &str) -> Result<(), E>,
    ) -> Result<Recovered, E> {
        self.recover_below(None, before_restore)
    }

    /// [`Recovery::recover`] trying only generations older than `below` when it is given
    /// (the newer ones failed after their program resumed).
    fn recover_below<E: From<RecoveryError>>(
        &self,
        below: Option<u64>,
        before_restore: &mut dyn FnMut(&Generation, &str) -> Result<(), E>,
    ) -> Result<Recovered, E> {
        if let Some(n) = self.generation {
            let g = self.named(n)?;
            self.announce_attempt(&g);
            return match self.attempt(&g, false, before_restore)? {
                Ok(r) => Ok(r),
                Err(Attempt::Damaged(why)) => Err(RecoveryError::Usage(format!(
                    "generation {n} of job {:?} is damaged and --generation {n} names it, so no other generation is tried: {why}",
                    g.job
                ))
                .into()),
                Err(Attempt::Failed(e)) => Err(e.into()),
            };
        }
        let mut skipped: Vec<(u64, String)> = Vec::new();
        let mut seen_job = false;
        let generations = self.store.scan_generations().map_err(RecoveryError::from)?;
        let mut lost: Vec<u64> = self
            .store
            .lost_generations()
            .map_err(RecoveryError::from)?
            .into_iter()
            .filter(|(_, job)| job == self.job)
            .map(|(id, _)| id.0)
            .collect();
        let mut report_lost_above = |id: u64, skipped: &mut Vec<(u64, String)>| {
            while lost.last().is_some_and(|l| *l > id) {
                if let Some(l) = lost.pop() {
                    warn_skipped(l, LOST_MANIFEST);
                    skipped.push((l, LOST_MANIFEST.to_string()));
                }
            }
        };
        for (id, r) in generations.into_iter().rev() {
            report_lost_above(id.0, &mut skipped);
            let g = match r {
                Err(e) => {
                    let reason = format!("manifest unreadable (job unknown): {e}");
                    warn_skipped(id.0, &reason);
                    skipped.push((id.0, reason));
                    continue;
                }
                Ok(g) if g.job != self.job => continue,
                Ok(g) => g,
            };
            seen_job = true;
            if below.is_some_and(|b| id.0 >= b) {
                skipped.push((id.0, "failed after its program resumed (see above)".into()));
                continue;
            }
            self.announce_attempt(&g);
            match self.attempt(&g, true, before_restore)? {
                Ok(r) => return Ok(r),
                Err(Attempt::Damaged(reason)) => {
                    warn_skipped(id.0, &reason);
                    skipped.push((id.0, reason));
                }
                Err(Attempt::Failed(e)) => return Err(e.into()),
            }
        }
        report_lost_above(0, &mut skipped);
        seen_job |= skipped.iter().any(|(_, why)| why == LOST_MANIFEST);
        if !seen_job {
            return Err(RecoveryError::from(StoreError::UnknownJob(self.job.to_string())).into());
        }
        let reason = skipped
            .iter()
            .map(|(id, why)| format!("generation {id}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        Err(RecoveryError::from(StoreError::NoConsistentGeneration {
            job: self.job.to_string(),
            reason,
        })
        .into())
    }

    /// Generation `n`, which must belong to the job.
    fn named(&self, n: u64) -> Result<Generation, RecoveryError> {
        let g = self.store.generation(GenerationId(n))?;
        if g.job != self.job {
            return Err(RecoveryError::Usage(format!(
                "generation {n} belongs to job {:?}, not {:?}",
                g.job, self.job
            )));
        }
        Ok(g)
    }

    fn announce_attempt(&self, g: &Generation) {
        match self.announce {
            Announce::Restarting => eprintln!(
                "cairn: restarting job {} from generation {}",
                self.job, g.id.0
            ),
            Announce::Resuming => eprintln!(
                "cairn: resuming job {} from generation {}",
                self.job, g.id.0
            ),
            // Announced once the agent is known.
            Announce::RestartingAgent => {}
        }
    }

    /// Tries generation `g`: reads its layout, picks the agent, rebuilds its program.
    /// Several agents ([`AgentChoice::OnlyOrEach`]) are verified here when `verify_each`.
    fn attempt<E>(
        &self,
        g: &Generation,
        verify_each: bool,
        before_restore: &mut dyn FnMut(&Generation, &str) -> Result<(), E>,
    ) -> Result<Result<Recovered, Attempt>, E> {
        let reader = match self.store.reader(g.id) {
            Ok(r) => r,
            Err(e) => return Ok(Err(Attempt::Failed(e.into()))),
        };
        // A damaged or missing chunk of meta.json or image.json shows up here.
        let agents = match read_meta(&reader) {
            Ok(meta) => meta.agents,
            Err(e) => return Ok(Err(agent_failure(e))),
        };
        let agent_id = match self.pick_agent(g, &agents) {
            Ok(Some(id)) => id,
            Ok(None) => return Ok(self.each(g, verify_each, agents)),
            Err(e) => return Ok(Err(Attempt::Failed(e))),
        };
        if self.announce == Announce::RestartingAgent {
            eprintln!(
                "cairn: restarting agent {agent_id} of job {} from generation {}",
                self.job, g.id.0
            );
        }
        before_restore(g, &agent_id)?;
        let image = match read_image(&reader, &agent_id) {
            Ok(i) => i,
            Err(e) => return Ok(Err(agent_failure(e))),
        };
        let source = Arc::new(StoreSource::new(Arc::new(reader), &agent_base(&agent_id)));
        let _progress = Progress::start_metered(
            match self.announce {
                Announce::RestartingAgent => {
                    format!("restoring agent {agent_id} from generation {}", g.id.0)
                }
                _ => format!("restoring job {} from generation {}", g.job, g.id.0),
            },
            source.meter(),
            Some(g.info.stats.logical_bytes),
        );
        let rebuilt = match self.memory {
            Memory::Lazy => SandboxJob::restore_lazy(&image, source.clone()),
            Memory::Eager => SandboxJob::restore(&image, source.as_ref()),
        };
        Ok(match rebuilt {
            Ok(process) => Ok(Recovered::One(Box::new(Restored {
                generation: g.clone(),
                agent_id,
                process,
            }))),
            Err(e) => Err(match source.damage() {
                Some(why) => Attempt::Damaged(why),
                None => Attempt::Failed(e.into()),
            }),
        })
    }

    /// The agent to rebuild from `g`, or `None` when each of several is restarted apart.
    fn pick_agent(
        &self,
        g: &Generation,
        agents: &[String],
    ) -> Result<Option<String>, RecoveryError> {
        match (&self.agent, agents) {
            (AgentChoice::Named(id), _) if agents.contains(id) => Ok(Some(id.clone())),
            (AgentChoice::Named(id), _) => Err(RecoveryError::Usage(format!(
                "generation {} has no agent {id:?} (it has: {})",
                g.id.0,
                agents.join(", ")
            ))),
            (_, [one]) => Ok(Some(one.clone())),
            (AgentChoice::OnlyOrEach, _) => Ok(None),
            (AgentChoice::Only, more) => Err(several_agents(g, more.len())),
        }
    }

    /// A generation of several agents, each restarted apart: with `verify`, every data
    /// chunk is read and verified first, so that a damaged generation is passed over.
    fn each(
        &self,
        g: &Generation,
        verify: bool,
        agents: Vec<String>,
    ) -> Result<Recovered, Attempt> {
        if verify {
            self.store
                .check_generation(g, cairn_store::CheckLevel::Data)
                .map_err(Attempt::Damaged)?;
        }
        Ok(Recovered::Each {
            generation: Box::new(g.clone()),
            agents,
        })
    }
}

/// True for the store errors that mean damaged or missing data.
fn is_damage(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Corrupt(_) | StoreError::MissingChunk(_) | StoreError::NotFound(_)
    )
}

fn store_failure(e: StoreError) -> Attempt {
    if is_damage(&e) {
        Attempt::Damaged(e.to_string())
    } else {
        Attempt::Failed(e.into())
    }
}

fn agent_failure(e: AgentError) -> Attempt {
    match e {
        AgentError::Store(e) => store_failure(e),
        e => Attempt::Failed(e.into()),
    }
}

/// Why the lazy part of `process`'s restore failed after the program resumed (a page could
/// not be read: damaged or missing data), if it did; the job was killed then. Take it before
/// the process is handed to its agent.
fn lazy_failure(process: &SandboxJob) -> impl Fn() -> Option<String> {
    let lazy = process.lazy_restore();
    move || match lazy.as_ref().and_then(|l| l.outcome()) {
        Some(cairn_restore::lazy::LazyOutcome::Failed(why)) => Some(why),
        _ => None,
    }
}
