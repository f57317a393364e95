//! `cairn launch` and `cairn restart` in coordinated mode: arguments and reporting; finding
//! the coordinator, registering, running the agent and the restart itself are
//! `cairn_coordinator::join`.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use cairn_coordinator::client::CoordinatorAddress;
use cairn_coordinator::join::{self, JoinError, Restart};
use cairn_engine::agent::sandbox_job::SandboxJob;
use cairn_engine::layout::hostname;
use cairn_engine::recovery::Ran;
use cairn_store::Generation;
use nix::sys::signal::SigSet;

use super::common::StoreOpt;
use super::coord_opts::{default_agent_id, CoordOpts};
use super::job_common::{
    agent_err, check_job_name, finish, open_or_init_store, open_store, recovery_err,
};
use crate::exit::usage;

/// What launch and restart share in coordinated mode.
pub struct Coordinated<'a> {
    /// `--store`/`--json`.
    pub store: &'a StoreOpt,
    /// The job name.
    pub job: &'a str,
    /// `--interval`, refused in coordinated mode.
    pub interval: Option<Duration>,
    /// The coordinator options.
    pub coord: &'a CoordOpts,
    /// Where the coordinator is.
    pub endpoint: (String, u16),
}

impl Coordinated<'_> {
    fn check(&self) -> anyhow::Result<()> {
        check_job_name(self.job)?;
        if self.interval.is_some() {
            return Err(usage(
                "--interval does not apply under a coordinator: use `cairn coordinator --interval SECS` or `cairn command --interval SECS`",
            ));
        }
        Ok(())
    }

    /// The coordinator's address and the store directory agreed with it.
    fn join(&self) -> anyhow::Result<(CoordinatorAddress, std::path::PathBuf)> {
        let (host, port) = &self.endpoint;
        let addr = join::connect(host, *port).map_err(join_err)?;
        let dir = join::store_dir(&addr, self.store.store.as_deref()).map_err(join_err)?;
        Ok((addr, dir))
    }
}

/// A joining error with the exit code it stands for (2 for the user's mistakes).
fn join_err(e: JoinError) -> anyhow::Error {
    match e {
        JoinError::Usage(msg) => usage(msg),
        JoinError::Recovery(e) => recovery_err(e),
        JoinError::Agent(e) => agent_err(e),
        e => anyhow::Error::new(e),
    }
}

/// `cairn launch` under a coordinator.
pub fn launch(
    c: &Coordinated<'_>,
    program: &[OsString],
    program_mask: &SigSet,
) -> anyhow::Result<i32> {
    c.check()?;
    let agent_id = match &c.coord.agent_id {
        Some(id) => id.clone(),
        None => default_agent_id(&hostname(), std::process::id()),
    };
    let (addr, dir) = c.join()?;
    let store = open_or_init_store(&dir)?;
    // Registered before the program starts: a refused registration starts nothing.
    let conn = join::register(&addr, c.job, &dir, &agent_id).map_err(join_err)?;
    let process = SandboxJob::launch(program, program_mask).map_err(agent_err)?;
    let report =
        join::run_agent(store, c.job, agent_id, process, None, conn, addr).map_err(agent_err)?;
    Ok(finish(&report, c.store.json))
}

/// `cairn restart` under a coordinator: restarts agent `--agent-id` of the generation, or
/// every agent of it (one `cairn restart --agent-id ID` process each when there are several).
pub fn restart(
    c: &Coordinated<'_>,
    generation: Option<u64>,
    adopt_addresses: bool,
) -> anyhow::Result<i32> {
    c.check()?;
    let (addr, dir) = c.join()?;
    let store = open_store(&dir)?;
    let restart = Restart {
        store: &store,
        store_dir: &dir,
        job: c.job,
        generation,
        agent_id: c.coord.agent_id.clone(),
        addr: &addr,
    };
    match restart.run().map_err(join_err)? {
        Ran::Agent(report) => Ok(finish(&report, c.store.json)),
        Ran::Each { generation, agents } => {
            restart_all(c, &dir, &generation, &agents, adopt_addresses)
        }
    }
}

/// Starts one `cairn restart --agent-id ID --generation N` per agent and waits for all of
/// them. The exit code is the first non-zero code in agent order, else 0.
fn restart_all(
    c: &Coordinated<'_>,
    dir: &Path,
    g: &Generation,
    agents: &[String],
    adopt_addresses: bool,
) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("finding the cairn executable")?;
    let (host, port) = &c.endpoint;
    eprintln!(
        "cairn: restarting the {} agents of job {} from generation {}",
        agents.len(),
        c.job,
        g.id.0
    );
    let mut children = Vec::with_capacity(agents.len());
    for id in agents {
        let mut cmd = Command::new(&exe);
        cmd.arg("restart")
            .arg("--store")
            .arg(dir)
            .args(["--job", c.job, "--generation", &g.id.0.to_string()])
            .args(["--coord-host", host, "--coord-port", &port.to_string()])
            .args(["--agent-id", id]);
        if c.store.json {
            cmd.arg("--json");
        }
        if adopt_addresses {
            cmd.arg("--adopt-addresses");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the agent {id}"))?;
        children.push((id, child));
    }
    let mut code = 0;
    for (id, mut child) in children {
        let status = child
            .wait()
            .with_context(|| format!("waiting for agent {id}"))?;
        let c = exit_code(status);
        if c != 0 {
            eprintln!("cairn: agent {id} ended with exit code {c}");
            if code == 0 {
                code = c;
            }
        }
    }
    Ok(code)
}

/// The shell convention for a child's end: its code, or 128 + the signal that killed it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(99)
}
