//! `cairn run`: one line for batch jobs. Launches the program the first time and resumes it
//! from the newest consistent generation afterwards; on the checkpoint signal (default
//! SIGUSR1) or SIGTERM takes a final checkpoint, stops the program and exits 75.

use std::ffi::OsString;
use std::time::Duration;

use cairn_engine::agent::sandbox_job::{ExternalTcp, SandboxJob};
use cairn_engine::agent::{block_agent_signals, StopPolicy};
use cairn_engine::recovery::{AgentChoice, Announce, Memory, Ran, Recovery, RecoveryError};
use cairn_engine::solo::{run_agent, AgentPolicy, DEFAULT_AGENT_ID};
use cairn_store::StoreError;
use clap::Args;
use nix::sys::signal::Signal;

use super::common::StoreOpt;
use super::gc_cmds::PolicyArgs;
use super::job_common::{
    agent_err, check_job_name, finish, open_or_init_store, parse_external_tcp, parse_interval,
    recovery_err,
};
use crate::exit::{usage, EXIT_RESUME};
use anyhow::Context as _;

/// Arguments of `cairn run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    store: StoreOpt,
    /// The job's name in the store (default: $SLURM_JOB_ID).
    #[arg(long)]
    job: Option<String>,
    /// Checkpoint every SECS seconds (also accepts durations like `10m`).
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    interval: Option<Duration>,
    /// The signal that means "checkpoint and stop" (SIGTERM always does too).
    #[arg(long, value_name = "SIG", default_value = "USR1", value_parser = parse_signal)]
    checkpoint_signal: Signal,
    /// Retention after every committed checkpoint: the job's generations are pruned by these
    /// rules (the newest consistent one and its fallback are always kept) and the space of
    /// the others is reclaimed, as `cairn prune` + `cairn gc` would.
    #[command(flatten)]
    retention: PolicyArgs,
    /// Inside a Slurm job: after the final checkpoint, put this job back into the queue with
    /// `scontrol requeue $SLURM_JOB_ID` so it resumes in its next allocation.
    #[arg(long)]
    requeue: bool,
    /// TCP connections whose peer is not a process of the job: `refuse` fails the checkpoint
    /// naming every one (the job runs on); `close` restores them as reset by the peer;
    /// `repair` (root) keeps them in place across `cairn run`'s stop, resets them otherwise.
    #[arg(long, value_name = "POLICY", default_value = "refuse", value_parser = parse_external_tcp)]
    external_tcp: ExternalTcp,
    /// The program and its arguments (used when the job has no generation yet).
    #[arg(last = true, required = true, value_name = "PROG")]
    program: Vec<OsString>,
}

/// Signals that may serve as `--checkpoint-signal`.
const ALLOWED: [Signal; 8] = [
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGALRM,
    Signal::SIGXCPU,
];

/// Parses `USR1`, `SIGUSR1` or `10`.
pub fn parse_signal(s: &str) -> Result<Signal, String> {
    let t = s.trim();
    let sig = if let Ok(n) = t.parse::<i32>() {
        Signal::try_from(n).map_err(|_| format!("unknown signal number {n}"))?
    } else {
        let upper = t.to_ascii_uppercase();
        let name = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        name.parse::<Signal>()
            .map_err(|_| format!("unknown signal {t:?}"))?
    };
    if !ALLOWED.contains(&sig) {
        return Err(format!(
            "{sig} cannot be the checkpoint signal (use USR1, USR2, TERM, INT, HUP, QUIT, ALRM or XCPU)"
        ));
    }
    Ok(sig)
}

/// Runs `cairn run`; returns the exit code.
pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let program_mask = block_agent_signals(Some(args.checkpoint_signal)).map_err(agent_err)?;
    let slurm_job = std::env::var("SLURM_JOB_ID").ok().filter(|s| !s.is_empty());
    let job = match (&args.job, &slurm_job) {
        (Some(j), _) => j.clone(),
        (None, Some(id)) => id.clone(),
        (None, None) => {
            return Err(usage(
                "no job name: give --job NAME or run inside a Slurm job (SLURM_JOB_ID)",
            ))
        }
    };
    check_job_name(&job)?;
    if args.requeue && slurm_job.is_none() {
        return Err(usage(
            "--requeue needs a Slurm job (SLURM_JOB_ID is not set)",
        ));
    }
    if let Some(id) = &slurm_job {
        let restarts = std::env::var("SLURM_RESTART_COUNT").unwrap_or_else(|_| "0".into());
        eprintln!("cairn: Slurm job {id}, restart count {restarts}, cairn job {job}");
    }
    let store = open_or_init_store(&args.store.dir()?)?;
    let stop = StopPolicy::CheckpointAndStop(args.checkpoint_signal);
    let policy = || AgentPolicy {
        interval: args.interval,
        stop,
        retention: args.retention.optional(),
    };
    let recovery = Recovery {
        store: &store,
        job: &job,
        generation: None,
        memory: Memory::Lazy,
        agent: AgentChoice::Only,
        announce: Announce::Resuming,
    };
    let ran = recovery.recover_and_run(&mut |_, _| Ok::<_, RecoveryError>(()), &mut |mut r| {
        r.process.set_external_tcp(args.external_tcp);
        Ok(run_agent(
            store.clone(),
            &job,
            r.agent_id,
            policy(),
            r.process,
            Some(r.generation.id.0),
        )?)
    });
    let report = match ran.and_then(Ran::into_report) {
        Ok(report) => report,
        // The job has no generation yet: the first run.
        Err(RecoveryError::Store(StoreError::UnknownJob(_))) => {
            eprintln!("cairn: starting job {job}");
            let mut p = SandboxJob::launch(&args.program, &program_mask).map_err(agent_err)?;
            p.set_external_tcp(args.external_tcp);
            run_agent(
                store.clone(),
                &job,
                DEFAULT_AGENT_ID.to_string(),
                policy(),
                p,
                None,
            )
            .map_err(agent_err)?
        }
        Err(e) => return Err(recovery_err(e)),
    };
    let code = finish(&report, args.store.json);
    match (&slurm_job, args.requeue && code == EXIT_RESUME) {
        (Some(id), true) => requeue(id),
        _ => Ok(code),
    }
}

/// `scontrol requeue ID`: the job goes back to the queue and resumes in its next allocation.
fn requeue(id: &str) -> anyhow::Result<i32> {
    let status = std::process::Command::new("scontrol")
        .args(["requeue", id])
        .status()
        .context("running scontrol requeue")?;
    if !status.success() {
        anyhow::bail!("scontrol requeue {id} failed ({status}); the checkpoint is kept, resubmit the job to resume");
    }
    eprintln!("cairn: Slurm job {id} requeued");
    Ok(EXIT_RESUME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_signals_by_name_or_number() {
        assert_eq!(parse_signal("USR1"), Ok(Signal::SIGUSR1));
        assert_eq!(parse_signal("sigusr2"), Ok(Signal::SIGUSR2));
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("10"), Ok(Signal::SIGUSR1));
        for bad in ["KILL", "9", "STOP", "CHLD", "FOO", "999", ""] {
            assert!(parse_signal(bad).is_err(), "{bad:?} accepted");
        }
    }
}
