//! `cairn launch`: run a program under an agent that checkpoints it.

use std::ffi::OsString;
use std::time::Duration;

use cairn_engine::agent::sandbox_job::SandboxJob;
use cairn_engine::agent::{block_agent_signals, StopPolicy};
use cairn_engine::solo::{run_agent, AgentPolicy, DEFAULT_AGENT_ID};
use clap::Args;

use super::common::StoreOpt;
use super::coord_opts::CoordOpts;
use super::coordinated::{self, Coordinated};
use super::gc_cmds::PolicyArgs;
use super::job_common::{agent_err, check_job_name, finish, open_or_init_store, parse_interval};

/// Arguments of `cairn launch`.
#[derive(Args, Debug)]
pub struct LaunchArgs {
    #[command(flatten)]
    store: StoreOpt,
    /// The job's name in the store.
    #[arg(long)]
    job: String,
    /// Checkpoint every SECS seconds (also accepts durations like `10m`).
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    interval: Option<Duration>,
    /// Retention after every committed checkpoint (solo agents only): prune the job's
    /// generations by these rules and reclaim the space, as `cairn prune` + `cairn gc`.
    #[command(flatten)]
    retention: PolicyArgs,
    #[command(flatten)]
    coord: CoordOpts,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROG")]
    program: Vec<OsString>,
}

/// Runs `cairn launch`; returns the exit code.
pub fn launch(args: LaunchArgs) -> anyhow::Result<i32> {
    let program_mask = block_agent_signals(None).map_err(agent_err)?;
    if let Some(endpoint) = args.coord.endpoint() {
        if args.retention.optional().is_some() {
            return Err(crate::exit::usage(
                "retention options apply without a coordinator; with one, run `cairn prune` and `cairn gc`",
            ));
        }
        let c = Coordinated {
            store: &args.store,
            job: &args.job,
            interval: args.interval,
            coord: &args.coord,
            endpoint,
        };
        return coordinated::launch(&c, &args.program, &program_mask);
    }
    args.coord.refuse_agent_id()?;
    check_job_name(&args.job)?;
    let store = open_or_init_store(&args.store.dir()?)?;
    let process = SandboxJob::launch(&args.program, &program_mask).map_err(agent_err)?;
    let report = run_agent(
        store,
        &args.job,
        DEFAULT_AGENT_ID.to_string(),
        AgentPolicy {
            interval: args.interval,
            stop: StopPolicy::Forward,
            retention: args.retention.optional(),
        },
        process,
        None,
    )
    .map_err(agent_err)?;
    Ok(finish(&report, args.store.json))
}
