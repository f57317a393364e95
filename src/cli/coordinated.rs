//! `cairn launch` and `cairn restart` in coordinated mode: find or start the coordinator,
//! register this agent, run the program, and let the coordinator drive checkpoints.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use std::cell::RefCell;

use anyhow::Context as _;
use cairn_coordinator::agent_side::run_coordinated;
use cairn_coordinator::client::{
    connect_or_spawn, AgentConnection, CommandClient, CoordinatorAddress,
};
use cairn_coordinator::protocol::{Registration, Request, Response};
use cairn_engine::agent::sandbox_job::SandboxJob;
use cairn_engine::agent::{Agent, AgentOptions, AgentReport, StopPolicy};
use cairn_engine::layout::hostname;
use cairn_engine::recovery::{
    AgentChoice, Announce, Memory, Ran, Recovery, RecoveryError, Restored,
};
use cairn_engine::solo::announce_running;
use cairn_store::{Generation, Store};
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

    fn connect(&self) -> anyhow::Result<CoordinatorAddress> {
        let (host, port) = &self.endpoint;
        connect_or_spawn(host, *port).with_context(|| format!("coordinator {host}:{port}"))
    }

    /// `--store`, else the store the coordinator commits into. A `--store` that is not the
    /// coordinator's is refused when the coordinator runs on this machine (its generations
    /// would name chunks it cannot find); for a remote one, where the same shared store may be
    /// mounted elsewhere, it is a warning.
    fn store_dir(&self, addr: &CoordinatorAddress) -> anyhow::Result<PathBuf> {
        let answer = CommandClient::connect(addr)
            .and_then(|mut c| c.request(&Request::Status))
            .context("asking the coordinator for its store")?;
        let theirs = match answer {
            Response::Status(s) => s.store.map(PathBuf::from),
            other => {
                return Err(anyhow::anyhow!(
                    "unexpected answer from the coordinator: {other:?}"
                ))
            }
        };
        match (&self.store.store, theirs) {
            (Some(mine), Some(theirs)) => {
                let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
                if canon(mine) != canon(&theirs) {
                    let msg = format!(
                        "the coordinator commits into store {} but --store is {}",
                        theirs.display(),
                        mine.display()
                    );
                    if is_this_host(&addr.host) {
                        return Err(usage(msg));
                    }
                    eprintln!("cairn: warning: {msg}");
                }
                Ok(mine.clone())
            }
            (Some(mine), None) => Ok(mine.clone()),
            (None, Some(theirs)) => Ok(theirs),
            (None, None) => Err(usage(
                "no store given: pass --store DIR or set CAIRN_STORE (the coordinator has none)",
            )),
        }
    }

    fn register(
        &self,
        addr: &CoordinatorAddress,
        store_dir: &Path,
        agent_id: &str,
    ) -> anyhow::Result<AgentConnection> {
        let store = std::fs::canonicalize(store_dir)
            .unwrap_or_else(|_| store_dir.to_path_buf())
            .to_string_lossy()
            .into_owned();
        let registration = Registration {
            job: self.job.to_string(),
            host: hostname(),
            pid: std::process::id(),
            agent_id: agent_id.to_string(),
            store: Some(store),
        };
        let conn = AgentConnection::connect(addr, registration).with_context(|| {
            format!(
                "registering agent {agent_id} with coordinator {}:{}",
                addr.host, addr.port
            )
        })?;
        eprintln!(
            "cairn: agent {agent_id} of job {} registered with coordinator {}:{}",
            self.job, addr.host, addr.port
        );
        Ok(conn)
    }
}

/// The options of a coordinated agent.
fn agent_options(c: &Coordinated<'_>, store: Store, agent_id: String) -> AgentOptions {
    AgentOptions {
        store,
        job: c.job.to_string(),
        agent_id,
        interval: None,
        stop: StopPolicy::Forward,
        verbose: true,
        // Generations are committed by the coordinator; retention is not an agent's business.
        retention: None,
    }
}

/// Runs the agent loop of a registered agent and returns the exit code.
fn run(
    c: &Coordinated<'_>,
    store: Store,
    agent_id: String,
    process: SandboxJob,
    restored_from: Option<u64>,
    conn: AgentConnection,
    addr: CoordinatorAddress,
) -> anyhow::Result<i32> {
    let opts = agent_options(c, store, agent_id);
    let agent = Agent::new(opts, process, restored_from).map_err(agent_err)?;
    announce_running(c.job);
    let report: AgentReport = run_coordinated(agent, conn, addr).map_err(agent_err)?;
    Ok(finish(&report, c.store.json))
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
    let addr = c.connect()?;
    let dir = c.store_dir(&addr)?;
    let store = open_or_init_store(&dir)?;
    // Registered before the program starts: a refused registration starts nothing.
    let conn = c.register(&addr, &dir, &agent_id)?;
    let process = SandboxJob::launch(program, program_mask).map_err(agent_err)?;
    run(c, store, agent_id, process, None, conn, addr)
}

/// An error of the coordinated restart: the engine's recovery, or the coordinator's side.
enum Failure {
    Recovery(RecoveryError),
    Coordinator(anyhow::Error),
}

impl From<RecoveryError> for Failure {
    fn from(e: RecoveryError) -> Self {
        Failure::Recovery(e)
    }
}

impl Failure {
    fn into_anyhow(self) -> anyhow::Error {
        match self {
            Failure::Recovery(e) => recovery_err(e),
            Failure::Coordinator(e) => e,
        }
    }
}

/// `cairn restart` under a coordinator: restarts agent `--agent-id` of the generation, or
/// every agent of it (one `cairn restart --agent-id ID` process each when there are several).
/// The generation is chosen by the engine's one recovery path (newest sound one, falling
/// back to older ones); memory is restored eagerly. The agent registers before its program
/// is rebuilt, so a refused registration starts nothing.
pub fn restart(c: &Coordinated<'_>, generation: Option<u64>) -> anyhow::Result<i32> {
    c.check()?;
    let addr = c.connect()?;
    let dir = c.store_dir(&addr)?;
    let store = open_store(&dir)?;
    let recovery = Recovery {
        store: &store,
        job: c.job,
        generation,
        memory: Memory::Eager,
        agent: match &c.coord.agent_id {
            Some(id) => AgentChoice::Named(id.clone()),
            None => AgentChoice::OnlyOrEach,
        },
        announce: Announce::RestartingAgent,
    };
    let registered: RefCell<Option<(String, AgentConnection)>> = RefCell::new(None);
    let mut register = |_: &Generation, agent_id: &str| -> Result<(), Failure> {
        let mut slot = registered.borrow_mut();
        match slot.as_ref() {
            None => {
                let conn = c
                    .register(&addr, &dir, agent_id)
                    .map_err(Failure::Coordinator)?;
                *slot = Some((agent_id.to_string(), conn));
                Ok(())
            }
            Some((id, _)) if id == agent_id => Ok(()),
            Some((id, _)) => Err(Failure::Coordinator(usage(format!(
                "agent {id} is registered, but the older generation to fall back to holds agent {agent_id}"
            )))),
        }
    };
    let mut run_restored = |r: Restored| -> Result<AgentReport, Failure> {
        let Some((_, conn)) = registered.borrow_mut().take() else {
            return Err(Failure::Coordinator(anyhow::anyhow!(
                "agent {} is not registered",
                r.agent_id
            )));
        };
        let opts = agent_options(c, store.clone(), r.agent_id);
        let agent = Agent::new(opts, r.process, Some(r.generation.id.0))
            .map_err(|e| Failure::Coordinator(agent_err(e)))?;
        announce_running(c.job);
        run_coordinated(agent, conn, addr.clone()).map_err(|e| Failure::Coordinator(agent_err(e)))
    };
    match recovery
        .recover_and_run(&mut register, &mut run_restored)
        .map_err(Failure::into_anyhow)?
    {
        Ran::Agent(report) => Ok(finish(&report, c.store.json)),
        Ran::Each { generation, agents } => restart_all(c, &dir, &generation, &agents),
    }
}

/// Starts one `cairn restart --agent-id ID --generation N` per agent and waits for all of
/// them. The exit code is the first non-zero code in agent order, else 0.
fn restart_all(
    c: &Coordinated<'_>,
    dir: &Path,
    g: &Generation,
    agents: &[String],
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

/// True when `host` names this machine.
fn is_this_host(host: &str) -> bool {
    host == "localhost"
        || host == hostname()
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}
