//! Joining a coordinated computation (`cairn launch`/`restart` with a coordinator): finding
//! the coordinator, agreeing on the store, registering an agent, running it, and restarting
//! an agent of a generation through the engine's one recovery path.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use cairn_engine::agent::sandbox_job::SandboxJob;
use cairn_engine::agent::{Agent, AgentError, AgentOptions, AgentReport, StopPolicy};
use cairn_engine::layout::hostname;
use cairn_engine::recovery::{
    AgentChoice, Announce, Memory, Ran, Recovery, RecoveryError, Restored,
};
use cairn_engine::solo::announce_running;
use cairn_store::{Generation, Store};

use crate::agent_side::run_coordinated;
use crate::client::{
    connect_or_spawn, AgentConnection, ClientError, CommandClient, CoordinatorAddress,
};
use crate::protocol::{Registration, Request, Response};

/// Why joining a computation failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Bad input from the user (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// Talking to the coordinator failed while doing `context`.
    #[error("{context}")]
    Client {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: ClientError,
    },
    /// The coordinator answered something else than asked.
    #[error("unexpected answer from the coordinator: {0}")]
    Unexpected(String),
    /// Choosing or rebuilding the generation failed.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// The agent failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

fn client(context: impl Into<String>) -> impl FnOnce(ClientError) -> JoinError {
    let context = context.into();
    move |source| JoinError::Client { context, source }
}

/// Connects to the coordinator at `host:port`, starting one when none listens on this host.
pub fn connect(host: &str, port: u16) -> Result<CoordinatorAddress, JoinError> {
    connect_or_spawn(host, port).map_err(client(format!("coordinator {host}:{port}")))
}

/// `mine` (`--store`), else the store the coordinator commits into. A store that is not the
/// coordinator's is refused when the coordinator runs on this machine (its generations would
/// name chunks it cannot find); for a remote one, where the same shared store may be mounted
/// elsewhere, it is a warning.
pub fn store_dir(addr: &CoordinatorAddress, mine: Option<&Path>) -> Result<PathBuf, JoinError> {
    let answer = CommandClient::connect(addr)
        .and_then(|mut c| c.request(&Request::Status))
        .map_err(client("asking the coordinator for its store"))?;
    let theirs = match answer {
        Response::Status(s) => s.store.map(PathBuf::from),
        other => return Err(JoinError::Unexpected(format!("{other:?}"))),
    };
    match (mine, theirs) {
        (Some(mine), Some(theirs)) => {
            let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            if canon(mine) != canon(&theirs) {
                let msg = format!(
                    "the coordinator commits into store {} but --store is {}",
                    theirs.display(),
                    mine.display()
                );
                if is_this_host(&addr.host) {
                    return Err(JoinError::Usage(msg));
                }
                eprintln!("cairn: warning: {msg}");
            }
            Ok(mine.to_path_buf())
        }
        (Some(mine), None) => Ok(mine.to_path_buf()),
        (None, Some(theirs)) => Ok(theirs),
        (None, None) => Err(JoinError::Usage(
            "no store given: pass --store DIR or set CAIRN_STORE (the coordinator has none)".into(),
        )),
    }
}

/// Registers agent `agent_id` of `job`, whose generations go to `store_dir`.
pub fn register(
    addr: &CoordinatorAddress,
    job: &str,
    store_dir: &Path,
    agent_id: &str,
) -> Result<AgentConnection, JoinError> {
    let store = std::fs::canonicalize(store_dir)
        .unwrap_or_else(|_| store_dir.to_path_buf())
        .to_string_lossy()
        .into_owned();
    let registration = Registration {
        job: job.to_string(),
        host: hostname(),
        pid: std::process::id(),
        agent_id: agent_id.to_string(),
        store: Some(store),
        barrier: true,
    };
    let conn = AgentConnection::connect(addr, registration).map_err(client(format!(
        "registering agent {agent_id} with coordinator {}:{}",
        addr.host, addr.port
    )))?;
    eprintln!(
        "cairn: agent {agent_id} of job {job} registered with coordinator {}:{}",
        addr.host, addr.port
    );
    Ok(conn)
}

/// Runs the agent of a registered program (launched, or restored from `restored_from`)
/// until the program ends or the coordinator stops it.
pub fn run_agent(
    store: Store,
    job: &str,
    agent_id: String,
    process: SandboxJob,
    restored_from: Option<u64>,
    conn: AgentConnection,
    addr: CoordinatorAddress,
) -> Result<AgentReport, AgentError> {
    let opts = AgentOptions {
        store,
        job: job.to_string(),
        agent_id,
        interval: None,
        stop: StopPolicy::Forward,
        verbose: true,
        // Generations are committed by the coordinator; retention is not an agent's business.
        retention: None,
    };
    let agent = Agent::new(opts, process, restored_from)?;
    announce_running(job);
    run_coordinated(agent, conn, addr)
}

/// A coordinated restart: which job, from which generation, and where.
pub struct Restart<'a> {
    /// The store the coordinator commits into.
    pub store: &'a Store,
    /// Its directory, as registered.
    pub store_dir: &'a Path,
    /// The job.
    pub job: &'a str,
    /// `--generation N`, else the newest sound one.
    pub generation: Option<u64>,
    /// `--agent-id`, else the generation's only agent (or each of several).
    pub agent_id: Option<String>,
    /// The coordinator.
    pub addr: &'a CoordinatorAddress,
}

impl Restart<'_> {
    /// Restarts agent `agent_id` of the generation, or its only agent, and runs it; a
    /// generation of several agents is returned for the caller to restart each of them. The
    /// generation comes from the engine's recovery (newest sound one, falling back to older
    /// ones); memory is restored eagerly. The agent registers just before its program is
    /// rebuilt, so a refused registration starts nothing.
    pub fn run(&self) -> Result<Ran, JoinError> {
        let recovery = Recovery {
            store: self.store,
            job: self.job,
            generation: self.generation,
            memory: Memory::Eager,
            agent: match &self.agent_id {
                Some(id) => AgentChoice::Named(id.clone()),
                None => AgentChoice::OnlyOrEach,
            },
            announce: Announce::RestartingAgent,
        };
        let registered: RefCell<Option<(String, AgentConnection)>> = RefCell::new(None);
        let mut register_once = |_: &Generation, agent_id: &str| -> Result<(), JoinError> {
            let mut slot = registered.borrow_mut();
            match slot.as_ref() {
                None => {
                    let conn = register(self.addr, self.job, self.store_dir, agent_id)?;
                    *slot = Some((agent_id.to_string(), conn));
                    Ok(())
                }
                Some((id, _)) if id == agent_id => Ok(()),
                Some((id, _)) => Err(JoinError::Usage(format!(
                    "agent {id} is registered, but the older generation to fall back to holds agent {agent_id}"
                ))),
            }
        };
        let mut run_restored = |r: Restored| -> Result<AgentReport, JoinError> {
            let Some((_, conn)) = registered.borrow_mut().take() else {
                return Err(JoinError::Usage(format!(
                    "agent {} is not registered",
                    r.agent_id
                )));
            };
            Ok(run_agent(
                self.store.clone(),
                self.job,
                r.agent_id,
                r.process,
                Some(r.generation.id.0),
                conn,
                self.addr.clone(),
            )?)
        };
        recovery.recover_and_run(&mut register_once, &mut run_restored)
    }
}

/// True when `host` names this machine.
pub fn is_this_host(host: &str) -> bool {
    host == "localhost"
        || host == hostname()
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}
