//! What `launch`, `restart` and `run` share: store and job arguments, choosing a generation,
//! restoring from it, running the agent and reporting.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use cairn_coordinator::agent::generation::{agent_base, read_image, read_meta};
use cairn_coordinator::agent::sandbox_job::SandboxJob;
use cairn_coordinator::agent::store_io::StoreSource;
use cairn_coordinator::agent::{
    Agent, AgentError, AgentOptions, AgentReport, JobEnd, ProgramExit, StopPolicy,
};
use cairn_store::{Generation, GenerationId, InitOptions, Store, StoreError};

use crate::exit::{usage, EXIT_RESUME};

/// The id of the single agent of a job started without a coordinator.
pub const DEFAULT_AGENT_ID: &str = "0";

/// Turns an agent error into an `anyhow` error whose exit code (src/exit.rs) is 2 for the
/// user's mistakes and 99 for cairn's.
pub fn agent_err(e: AgentError) -> anyhow::Error {
    if e.is_usage() {
        usage(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

/// Parses `--interval`: seconds (`30`, `0.5`) or a duration such as `10m` or `1h 30m`.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Duration::from_secs_f64(secs),
        Ok(_) => return Err("the interval must be a positive number of seconds".into()),
        Err(_) => humantime::parse_duration(s.trim()).map_err(|e| e.to_string())?,
    };
    if d < Duration::from_millis(10) {
        return Err("the interval must be at least 10ms".into());
    }
    Ok(d)
}

/// Opens the store at `path`, creating it first when the directory does not exist yet or is
/// empty.
pub fn open_or_init_store(path: &Path) -> anyhow::Result<Store> {
    let fresh = match std::fs::read_dir(path) {
        Ok(mut rd) => rd.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(_) => false,
    };
    if fresh {
        return Store::init(path, InitOptions::default())
            .with_context(|| format!("creating a store in {}", path.display()));
    }
    open_store(path)
}

/// Opens an existing store; a directory that is not a store is a usage error.
pub fn open_store(path: &Path) -> anyhow::Result<Store> {
    Store::open(path).with_context(|| format!("opening store {}", path.display()))
}

/// Checks a job name against the store's rules before anything is started.
pub fn check_job_name(job: &str) -> anyhow::Result<()> {
    cairn_store::check_job_name(job).map_err(|e| match e {
        StoreError::InvalidArgument(msg) => usage(msg),
        other => usage(other.to_string()),
    })
}

/// The generation to restart `job` from: `wanted`, or the newest consistent one (warning on
/// stderr about each newer generation that was skipped and why).
pub fn choose_generation(
    store: &Store,
    job: &str,
    wanted: Option<u64>,
) -> anyhow::Result<Generation> {
    if let Some(n) = wanted {
        let g = store.generation(GenerationId(n))?;
        if g.job != job {
            return Err(usage(format!(
                "generation {n} belongs to job {:?}, not {job:?}",
                g.job
            )));
        }
        return Ok(g);
    }
    let (g, skipped) = store.latest_consistent(job)?;
    for s in skipped {
        eprintln!(
            "cairn: warning: skipped generation {}: {}",
            s.id.0, s.reason
        );
    }
    Ok(g)
}

/// Why [`restore_generation`] failed.
pub enum RestoreFailure {
    /// The generation's data turned out to be damaged while it was read (a chunk whose hash
    /// does not match, a missing chunk); an older generation may still be sound.
    Damaged(String),
    /// Anything else (the program, the machine, the user's arguments).
    Other(anyhow::Error),
}

impl RestoreFailure {
    /// The error when generation `g` was named by the user (`--generation`): a damaged one is
    /// bad input (exit 2), like a job none of whose generations is sound, and no other
    /// generation is tried in its place.
    pub fn named(self, g: &Generation) -> anyhow::Error {
        match self {
            RestoreFailure::Damaged(why) => usage(format!(
                "generation {n} of job {:?} is damaged and --generation {n} names it, so no other generation is tried: {why}",
                g.job,
                n = g.id.0
            )),
            RestoreFailure::Other(e) => e,
        }
    }
}

/// Rebuilds the program of generation `g`; returns it and the agent id it ran under. Every
/// data chunk is verified as it is restored (nothing is read twice).
pub fn restore_generation(
    store: &Store,
    g: &Generation,
) -> Result<(SandboxJob, String), RestoreFailure> {
    let other = |e: anyhow::Error| RestoreFailure::Other(e);
    // A damaged or missing chunk of meta.json or image.json shows up here.
    let read_failed = |e: AgentError| match e {
        AgentError::Store(
            e @ (StoreError::Corrupt(_) | StoreError::MissingChunk(_) | StoreError::NotFound(_)),
        ) => RestoreFailure::Damaged(e.to_string()),
        e => other(agent_err(e)),
    };
    let reader = store.reader(g.id).map_err(|e| other(e.into()))?;
    let meta = read_meta(&reader).map_err(read_failed)?;
    let agent_id = match meta.agents.as_slice() {
        [one] => one.clone(),
        more => {
            return Err(other(usage(format!(
                "generation {} holds {} agents; restart it through a coordinator",
                g.id.0,
                more.len()
            ))))
        }
    };
    let _progress = cairn_coordinator::agent::progress::Progress::start(format!(
        "restoring job {} from generation {}",
        g.job, g.id.0
    ));
    let image = read_image(&reader, &agent_id).map_err(read_failed)?;
    let source = std::sync::Arc::new(StoreSource::new(
        std::sync::Arc::new(reader),
        &agent_base(&agent_id),
    ));
    match SandboxJob::restore_lazy(&image, source.clone()) {
        Ok(job) => Ok((job, agent_id)),
        Err(e) => Err(match source.damage() {
            Some(why) => RestoreFailure::Damaged(why),
            None => other(agent_err(e)),
        }),
    }
}

/// Restores `job` from its newest sound generation. Nothing is checked ahead: the restore
/// reads every node and data chunk it needs and verifies each as it reads it, before the
/// program runs again; a generation found damaged then (a corrupt or missing chunk, node or
/// pack) is abandoned, its half-built job killed, and the previous one tried
/// (docs/performance.md, "Session 4: restart: no separate structure check"). Each generation passed over
/// is reported on stderr with the reason; `announce` is called before each attempt.
/// Only generations older than `below` are tried when it is given (the newer ones failed
/// after their program resumed, see [`lazy_failure`]).
/// Errors: [`StoreError::UnknownJob`] when the job has no generation (see
/// `cairn run`), [`StoreError::NoConsistentGeneration`] when none is sound.
pub fn restore_newest(
    store: &Store,
    job: &str,
    below: Option<u64>,
    announce: &dyn Fn(&Generation),
) -> anyhow::Result<(Generation, SandboxJob, String)> {
    let mut skipped: Vec<(u64, String)> = Vec::new();
    let mut seen_job = false;
    fn skip(id: u64, reason: String, skipped: &mut Vec<(u64, String)>) {
        eprintln!("cairn: warning: skipped generation {id}: {reason}");
        skipped.push((id, reason));
    }
    for (id, r) in store.scan_generations()?.into_iter().rev() {
        let g = match r {
            Err(e) => {
                skip(
                    id.0,
                    format!("manifest unreadable (job unknown): {e}"),
                    &mut skipped,
                );
                continue;
            }
            Ok(g) if g.job != job => continue,
            Ok(g) => g,
        };
        seen_job = true;
        if below.is_some_and(|b| id.0 >= b) {
            skipped.push((id.0, "failed after its program resumed (see above)".into()));
            continue;
        }
        announce(&g);
        match restore_generation(store, &g) {
            Ok((process, agent_id)) => return Ok((g, process, agent_id)),
            Err(RestoreFailure::Damaged(reason)) => skip(id.0, reason, &mut skipped),
            Err(RestoreFailure::Other(e)) => return Err(e),
        }
    }
    if !seen_job {
        return Err(StoreError::UnknownJob(job.to_string()).into());
    }
    let reason = skipped
        .iter()
        .map(|(id, why)| format!("generation {id}: {why}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(StoreError::NoConsistentGeneration {
        job: job.to_string(),
        reason,
    }
    .into())
}

/// Why the lazy part of `process`'s restore failed after the program resumed (a page
/// could not be read: damaged or missing data), if it did; the job was killed then
/// (docs/capture-restore.md, "Lazy restore"). Take it before [`run_agent`] consumes the process.
pub fn lazy_failure(process: &SandboxJob) -> impl Fn() -> Option<String> {
    let lazy = process.lazy_restore();
    move || match lazy.as_ref().and_then(|l| l.outcome()) {
        Some(cairn_restore::lazy::LazyOutcome::Failed(why)) => Some(why),
        _ => None,
    }
}

/// The warning printed when generation `id` failed after its program resumed.
pub fn warn_lazy_failure(id: u64, why: &str) {
    eprintln!(
        "cairn: warning: generation {id} failed after the program resumed ({why}); the job was killed, restarting it from an older generation"
    );
}

/// Runs the agent's event loop over `process` and returns its report.
pub fn run_agent(
    store: Store,
    job: &str,
    agent_id: String,
    policy: AgentPolicy,
    process: SandboxJob,
    restored_from: Option<u64>,
) -> anyhow::Result<AgentReport> {
    let AgentPolicy {
        interval,
        stop,
        retention,
    } = policy;
    let opts = AgentOptions {
        store,
        job: job.to_string(),
        agent_id,
        interval,
        stop,
        verbose: true,
        retention,
    };
    let agent = Agent::new(opts, process, restored_from).map_err(agent_err)?;
    eprintln!(
        "cairn: job {job} running (agent pid {})",
        std::process::id()
    );
    agent.run().map_err(agent_err)
}

/// When the agent checkpoints, what signals do, and what it keeps.
pub struct AgentPolicy {
    /// Periodic checkpoints.
    pub interval: Option<Duration>,
    /// What the checkpoint and termination signals do.
    pub stop: StopPolicy,
    /// Retention applied after each committed checkpoint.
    pub retention: Option<cairn_gc::Policy>,
}

/// Prints the final report (one JSON line with `--json`, else one human line, both on
/// stderr) and returns the exit code it stands for.
pub fn finish(report: &AgentReport, json: bool) -> i32 {
    let code = match &report.end {
        JobEnd::Exited { status } => status.exit_code(),
        JobEnd::Checkpointed { .. } => EXIT_RESUME,
    };
    if json {
        match serde_json::to_string(report) {
            Ok(line) => eprintln!("{line}"),
            Err(e) => eprintln!("cairn: error: encoding the report: {e}"),
        }
    } else {
        let n = report.checkpoints.len();
        match &report.end {
            JobEnd::Exited { status } => eprintln!(
                "cairn: job {}: program ended ({}), {n} checkpoint(s) committed",
                report.job,
                describe(*status)
            ),
            JobEnd::Checkpointed { generation } => eprintln!(
                "cairn: job {}: checkpointed as generation {generation} and stopped; run again to resume (exit {EXIT_RESUME})",
                report.job
            ),
        }
    }
    code
}

fn describe(status: ProgramExit) -> String {
    match status {
        ProgramExit::Code(c) => format!("exit code {c}"),
        ProgramExit::Signal(s) => format!("killed by signal {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_in_seconds_or_human_durations() {
        assert_eq!(parse_interval("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_interval("1h 30m"), Ok(Duration::from_secs(5400)));
        for bad in ["0", "-1", "abc", "0.001", "NaN", ""] {
            assert!(parse_interval(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn job_names_follow_the_store_rules() {
        for good in ["sim", "a.b_c-1", "4242"] {
            assert!(check_job_name(good).is_ok(), "{good:?}");
        }
        for bad in ["", ".x", "a/b", "a b", &"x".repeat(129)] {
            assert!(check_job_name(bad).is_err(), "{bad:?}");
        }
    }
}
