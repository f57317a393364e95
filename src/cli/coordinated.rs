//! `cairn launch` and `cairn restart` in coordinated mode: find or start the coordinator,
//! register this agent, run the program, and let the coordinator drive checkpoints.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use cairn_coordinator::agent::generation::{agent_base, hostname, read_image, read_meta};
use cairn_coordinator::agent::progress::Progress;
use cairn_coordinator::agent::sandbox_job::SandboxJob;
use cairn_coordinator::agent::store_io::StoreSource;
use cairn_coordinator::agent::{Agent, AgentOptions, AgentReport, StopPolicy};
use cairn_coordinator::client::{
    connect_or_spawn, AgentConnection, CommandClient, CoordinatorAddress,
};
use cairn_coordinator::protocol::{Registration, Request, Response};
use cairn_store::{Generation, Store};
use nix::sys::signal::SigSet;

use super::agent_common::{
    agent_err, check_job_name, choose_generation, finish, open_or_init_store, open_store,
};
use super::common::StoreOpt;
use super::coord_opts::{default_agent_id, CoordOpts};
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
    let opts = AgentOptions {
        store,
        job: c.job.to_string(),
        agent_id,
        interval: None,
        stop: StopPolicy::Forward,
        verbose: true,
        // Generations are committed by the coordinator; retention is not an agent's business.
        retention: None,
    };
    let agent = Agent::new(opts, process, restored_from).map_err(agent_err)?;
    eprintln!(
        "cairn: job {} running (agent pid {})",
        c.job,
        std::process::id()
    );
    let report: AgentReport = agent.run_coordinated(conn, addr).map_err(agent_err)?;
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

/// `cairn restart` under a coordinator: restarts agent `--agent-id` of the generation, or
/// every agent of it (one `cairn restart --agent-id ID` process each when there are several).
pub fn restart(c: &Coordinated<'_>, generation: Option<u64>) -> anyhow::Result<i32> {
    c.check()?;
    let addr = c.connect()?;
    let dir = c.store_dir(&addr)?;
    let store = open_store(&dir)?;
    let g = choose_generation(&store, c.job, generation)?;
    let agents = {
        let reader = store.reader(g.id)?;
        read_meta(&reader).map_err(agent_err)?.agents
    };
    let agent_id = match (&c.coord.agent_id, agents.as_slice()) {
        (Some(id), _) if agents.contains(id) => id.clone(),
        (Some(id), _) => {
            return Err(usage(format!(
                "generation {} has no agent {id:?} (it has: {})",
                g.id.0,
                agents.join(", ")
            )))
        }
        (None, [one]) => one.clone(),
        (None, _) => return restart_all(c, &dir, &g, &agents),
    };
    eprintln!(
        "cairn: restarting agent {agent_id} of job {} from generation {}",
        c.job, g.id.0
    );
    let conn = c.register(&addr, &dir, &agent_id)?;
    let process = restore_agent(&store, &g, &agent_id)?;
    run(c, store, agent_id, process, Some(g.id.0), conn, addr)
}

/// Rebuilds agent `id`'s program from generation `g`.
fn restore_agent(store: &Store, g: &Generation, id: &str) -> anyhow::Result<SandboxJob> {
    let _progress = Progress::start(format!("restoring agent {id} from generation {}", g.id.0));
    let reader = std::sync::Arc::new(store.reader(g.id)?);
    let image = read_image(&reader, id).map_err(agent_err)?;
    let source = StoreSource::new(reader, &agent_base(id));
    SandboxJob::restore(&image, &source).map_err(agent_err)
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
