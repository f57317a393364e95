//! `--coordinator`, `--coord-host`, `--coord-port` and `--agent-id` of `cairn launch` and
//! `cairn restart`: whether a job runs under a coordinator, and which one.

use clap::Args;

use cairn_coordinator::client::{DEFAULT_HOST, DEFAULT_PORT};

/// Coordinator options shared by `launch` and `restart`.
#[derive(Args, Debug, Clone)]
pub struct CoordOpts {
    /// Run under a coordinator (localhost:7779 unless --coord-host/--coord-port say
    /// otherwise); one is started in the background when none is reachable.
    #[arg(long)]
    pub coordinator: bool,
    /// Coordinator host; giving it (or CAIRN_COORD_HOST) implies --coordinator.
    #[arg(long, env = "CAIRN_COORD_HOST", value_name = "HOST")]
    pub coord_host: Option<String>,
    /// Coordinator port; giving it (or CAIRN_COORD_PORT) implies --coordinator.
    #[arg(long, env = "CAIRN_COORD_PORT", value_name = "PORT")]
    pub coord_port: Option<u16>,
    /// This agent's id in the computation (launch: default HOST-PID; restart: which agent
    /// of the generation to restart, default all of them).
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,
}

impl CoordOpts {
    /// The coordinator's host and port when coordinated mode is selected, else `None`
    /// (standalone mode, the job's generations are committed by the agent itself).
    pub fn endpoint(&self) -> Option<(String, u16)> {
        if !self.coordinator && self.coord_host.is_none() && self.coord_port.is_none() {
            return None;
        }
        Some((
            self.coord_host
                .clone()
                .unwrap_or_else(|| DEFAULT_HOST.to_string()),
            self.coord_port.unwrap_or(DEFAULT_PORT),
        ))
    }
}

impl CoordOpts {
    /// `--agent-id` only means something under a coordinator.
    pub fn refuse_agent_id(&self) -> anyhow::Result<()> {
        match self.agent_id {
            Some(_) => Err(crate::exit::usage(
                "--agent-id needs a coordinator (--coordinator, --coord-host or --coord-port)",
            )),
            None => Ok(()),
        }
    }
}

/// The default agent id of a launched program: `HOST-PID` with characters outside
/// `[A-Za-z0-9._-]` replaced by `_`.
pub fn default_agent_id(host: &str, pid: u32) -> String {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}-{pid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_agent_ids_are_plain_names() {
        assert_eq!(default_agent_id("node-1.cluster", 42), "node-1.cluster-42");
        assert_eq!(default_agent_id("we ird/host", 7), "we_ird_host-7");
    }
}
