//! Running a job under a solo agent (`cairn launch`, `restart` and `run` without a
//! coordinator): the agent commits its own generations.

use std::time::Duration;

use cairn_store::Store;

use crate::agent::sandbox_job::SandboxJob;
use crate::agent::{Agent, AgentError, AgentOptions, AgentReport, StopPolicy};

/// The id of the single agent of a job started without a coordinator.
pub const DEFAULT_AGENT_ID: &str = "0";

/// When the agent checkpoints, what signals do, and what it keeps.
pub struct AgentPolicy {
    /// Periodic checkpoints.
    pub interval: Option<Duration>,
    /// What the checkpoint and termination signals do.
    pub stop: StopPolicy,
    /// Retention applied after each committed checkpoint.
    pub retention: Option<cairn_gc::Policy>,
}

/// Runs the agent's event loop over `process` (restored from generation `restored_from`, or
/// just launched) and returns its report.
pub fn run_agent(
    store: Store,
    job: &str,
    agent_id: String,
    policy: AgentPolicy,
    process: SandboxJob,
    restored_from: Option<u64>,
) -> Result<AgentReport, AgentError> {
    let AgentPolicy {
        interval,
        stop,
        retention,
    } = policy;
    let opts = AgentOptions {
        store,
        job: job.to_string(),
        agent_id,
        interval,
        stop,
        verbose: true,
        retention,
    };
    let agent = Agent::new(opts, process, restored_from)?;
    announce_running(job);
    agent.run()
}

/// The line every agent prints once it handles signals and runs the program.
pub fn announce_running(job: &str) {
    eprintln!(
        "cairn: job {job} running (agent pid {})",
        std::process::id()
    );
}
