//! What `launch`, `restart` and `run` share at the command line: store and job arguments,
//! turning engine errors into exit codes, and rendering the agent's final report.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use cairn_engine::agent::sandbox_job::ExternalTcp;
use cairn_engine::agent::{AgentError, AgentReport, JobEnd, ProgramExit};
use cairn_engine::recovery::RecoveryError;
use cairn_store::{InitOptions, Store, StoreError};

use crate::exit::{usage, EXIT_RESUME};

/// Turns an agent error into an `anyhow` error whose exit code (src/exit.rs) is 2 for the
/// user's mistakes and 99 for cairn's.
pub fn agent_err(e: AgentError) -> anyhow::Error {
    if e.is_usage() {
        usage(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

/// Turns a recovery error into an `anyhow` error with the right exit code.
pub fn recovery_err(e: RecoveryError) -> anyhow::Error {
    match e {
        RecoveryError::Store(e) => anyhow::Error::new(e),
        RecoveryError::Agent(e) => agent_err(e),
        RecoveryError::Usage(msg) => usage(msg),
        e @ RecoveryError::FailedAfterResume { .. } => anyhow::Error::new(e),
    }
}

/// Parses `--external-tcp`: `refuse`, `close`, or (as root) `repair`.
pub fn parse_external_tcp(s: &str) -> Result<ExternalTcp, String> {
    let p = s.parse()?;
    // SAFETY: geteuid has no preconditions.
    if p == ExternalTcp::Repair && unsafe { libc::geteuid() } != 0 {
        return Err(
            "repair needs root (the kernel's TCP repair mode needs CAP_NET_ADMIN); \
                    as an ordinary user use close"
                .into(),
        );
    }
    Ok(p)
}

/// `--external-tcp` other than `refuse` applies to solo agents only.
pub fn solo_only_external_tcp(policy: ExternalTcp) -> anyhow::Result<()> {
    if policy == ExternalTcp::Refuse {
        return Ok(());
    }
    Err(usage("--external-tcp applies without a coordinator"))
}

/// Parses `--interval`: seconds (`30`, `0.5`) or a duration such as `10m` or `1h 30m`.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("the interval {s} is too long"))?,
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
    let store = Store::open_or_init(path, InitOptions::default())
        .with_context(|| format!("opening store {}", path.display()))?;
    super::common::warn_if_index_rebuilt(&store);
    warn_if_not_writable(&store);
    Ok(store)
}

/// Opens an existing store; a directory that is not a store is a usage error.
pub fn open_store(path: &Path) -> anyhow::Result<Store> {
    let store = Store::open(path).with_context(|| format!("opening store {}", path.display()))?;
    super::common::warn_if_index_rebuilt(&store);
    warn_if_not_writable(&store);
    Ok(store)
}

/// Says at a job's start that its checkpoints will fail, rather than at the first one (the
/// job still runs: a store problem never costs the computation).
fn warn_if_not_writable(store: &Store) {
    if let Err(why) = store.check_writable() {
        eprintln!(
            "cairn: warning: {}: this user cannot write checkpoints into the store ({why}); \
             the program runs, but every checkpoint will fail until it can",
            store.path().display()
        );
    }
}

/// Checks a job name against the store's rules before anything is started.
pub fn check_job_name(job: &str) -> anyhow::Result<()> {
    cairn_store::check_job_name(job).map_err(|e| match e {
        StoreError::InvalidArgument(msg) => usage(msg),
        other => usage(other.to_string()),
    })
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
        for bad in [
            "0",
            "-1",
            "abc",
            "0.001",
            "NaN",
            "",
            "1e20",
            "99999999999999999999",
        ] {
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
