//! `cairn restart`: rebuild a job's program from the store and run it like `launch`.

use std::time::Duration;

use cairn_coordinator::agent::{block_agent_signals, StopPolicy};
use clap::Args;

use super::agent_common::{
    agent_err, check_job_name, choose_generation, finish, lazy_failure, open_store, parse_interval,
    restore_generation, restore_newest, run_agent, warn_lazy_failure, AgentPolicy,
};
use super::common::StoreOpt;
use super::coord_opts::CoordOpts;
use super::coordinated::{self, Coordinated};
use super::gc_cmds::PolicyArgs;
use cairn_store::Generation;

/// Arguments of `cairn restart`.
#[derive(Args, Debug)]
pub struct RestartArgs {
    #[command(flatten)]
    store: StoreOpt,
    /// The job to restart.
    #[arg(long)]
    job: String,
    /// Restart from this generation instead of the newest consistent one.
    #[arg(long, value_name = "N")]
    generation: Option<u64>,
    /// Checkpoint every SECS seconds (also accepts durations like `10m`).
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    interval: Option<Duration>,
    /// Retention after every committed checkpoint (solo agents only): prune the job's
    /// generations by these rules and reclaim the space, as `cairn prune` + `cairn gc`.
    #[command(flatten)]
    retention: PolicyArgs,
    #[command(flatten)]
    coord: CoordOpts,
}

/// Runs `cairn restart`; returns the exit code.
pub fn restart(args: RestartArgs) -> anyhow::Result<i32> {
    block_agent_signals(None).map_err(agent_err)?;
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
        return coordinated::restart(&c, args.generation);
    }
    args.coord.refuse_agent_id()?;
    check_job_name(&args.job)?;
    let store = open_store(&args.store.dir()?)?;
    let announce = |g: &Generation| {
        eprintln!(
            "cairn: restarting job {} from generation {}",
            args.job, g.id.0
        )
    };
    // A generation whose lazy restore fails after the program resumed is left for the next
    // older one (not when the user named the generation).
    let mut below = None;
    loop {
        let (g, process, agent_id) = match args.generation {
            Some(n) => {
                let g = choose_generation(&store, &args.job, Some(n))?;
                announce(&g);
                let (process, agent_id) =
                    restore_generation(&store, &g).map_err(|f| f.named(&g))?;
                (g, process, agent_id)
            }
            None => restore_newest(&store, &args.job, below, &announce)?,
        };
        let failed = lazy_failure(&process);
        let report = run_agent(
            store.clone(),
            &args.job,
            agent_id,
            AgentPolicy {
                interval: args.interval,
                stop: StopPolicy::Forward,
                retention: args.retention.optional(),
            },
            process,
            Some(g.id.0),
        )?;
        match failed() {
            Some(why) if args.generation.is_some() => {
                return Err(anyhow::anyhow!(
                    "generation {} failed after the program resumed: {why}",
                    g.id.0
                ))
            }
            Some(why) => {
                warn_lazy_failure(g.id.0, &why);
                below = Some(g.id.0);
                continue;
            }
            None => return Ok(finish(&report, args.store.json)),
        }
    }
}
