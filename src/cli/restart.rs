//! `cairn restart`: rebuild a job's program from the store and run it like `launch`.

use std::time::Duration;

use cairn_engine::agent::{block_agent_signals, StopPolicy};
use cairn_engine::recovery::{AgentChoice, Announce, Memory, Ran, Recovery, RecoveryError};
use cairn_engine::solo::{run_agent, AgentPolicy};
use clap::Args;

use super::common::StoreOpt;
use super::coord_opts::CoordOpts;
use super::coordinated::{self, Coordinated};
use super::gc_cmds::PolicyArgs;
use super::job_common::{
    agent_err, check_job_name, finish, open_store, parse_external_tcp, parse_interval,
    recovery_err, solo_only_external_tcp,
};
use cairn_engine::agent::sandbox_job::ExternalTcp;

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
    /// TCP connections whose peer is not a process of the job: `refuse` fails the checkpoint
    /// naming every one (the job runs on); `close` restores them as reset by the peer;
    /// `repair` (root) keeps them in place across `cairn run`'s stop, resets them otherwise.
    #[arg(long, value_name = "POLICY", default_value = "refuse", value_parser = parse_external_tcp)]
    external_tcp: ExternalTcp,
    /// Coordinated restarts on other nodes: add the job's addresses that this node lacks to
    /// it (the interface that reaches them; needs CAP_NET_ADMIN), so that the connections
    /// between the agents are made again on their recorded addresses.
    #[arg(long)]
    adopt_addresses: bool,
}

/// Runs `cairn restart`; returns the exit code.
pub fn restart(args: RestartArgs) -> anyhow::Result<i32> {
    block_agent_signals(None).map_err(agent_err)?;
    if let Some(endpoint) = args.coord.endpoint() {
        solo_only_external_tcp(args.external_tcp)?;
        if args.retention.optional().is_some() {
            return Err(crate::exit::usage(
                "retention options apply without a coordinator; with one, run `cairn prune` and `cairn gc`",
            ));
        }
        cairn_engine::set_adopt_addresses(args.adopt_addresses);
        let c = Coordinated {
            store: &args.store,
            job: &args.job,
            interval: args.interval,
            coord: &args.coord,
            endpoint,
        };
        return coordinated::restart(&c, args.generation, args.adopt_addresses);
    }
    args.coord.refuse_agent_id()?;
    if args.adopt_addresses {
        return Err(crate::exit::usage(
            "--adopt-addresses applies to a coordinated restart (--coord-host/--coord-port)",
        ));
    }
    check_job_name(&args.job)?;
    let store = open_store(&args.store.dir()?)?;
    let recovery = Recovery {
        store: &store,
        job: &args.job,
        generation: args.generation,
        memory: Memory::Lazy,
        agent: AgentChoice::Only,
        announce: Announce::Restarting,
    };
    let ran = recovery.recover_and_run(&mut |_, _| Ok::<_, RecoveryError>(()), &mut |mut r| {
        r.process.set_external_tcp(args.external_tcp);
        Ok(run_agent(
            store.clone(),
            &args.job,
            r.agent_id,
            AgentPolicy {
                interval: args.interval,
                stop: StopPolicy::Forward,
                retention: args.retention.optional(),
            },
            r.process,
            Some(r.generation.id.0),
        )?)
    });
    let report = ran.and_then(Ran::into_report).map_err(recovery_err)?;
    Ok(finish(&report, args.store.json))
}
