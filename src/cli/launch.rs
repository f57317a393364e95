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
use super::job_common::{
    agent_err, check_job_name, finish, open_or_init_store, parse_external_tcp, parse_interval,
    solo_only_external_tcp,
};
use cairn_engine::agent::sandbox_job::ExternalTcp;

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
    /// TCP connections whose peer is not a process of the job: `refuse` fails the checkpoint
    /// naming every one (the job runs on); `close` restores them as reset by the peer;
    /// `repair` (root) keeps them in place across `cairn run`'s stop, resets them otherwise.
    #[arg(long, value_name = "POLICY", default_value = "refuse", value_parser = parse_external_tcp)]
    external_tcp: ExternalTcp,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROG")]
    program: Vec<OsString>,
}

/// Runs `cairn launch`; returns the exit code.
pub fn launch(args: LaunchArgs) -> anyhow::Result<i32> {
    let program_mask = block_agent_signals(None).map_err(agent_err)?;
    if let Some(endpoint) = args.coord.endpoint() {
        solo_only_external_tcp(args.external_tcp)?;
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
    let mut process = SandboxJob::launch(&args.program, &program_mask).map_err(agent_err)?;
    process.set_external_tcp(args.external_tcp);
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
