//! The layout of a checkpoint generation (docs/design/contracts.md), defined once for the solo
//! agent and the coordinator: `meta.json` plus `agents/<agent-id>/`, one subtree per agent.
//! Writing the root tree and reading `meta.json` and an agent's image back.

use cairn_store::{GenerationReader, StoreError, StreamRef, Writer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::agent::error::AgentError;

/// Version of the checkpoint generation layout.
pub const LAYOUT_FORMAT: u32 = 1;

/// The `kind` of a checkpoint generation, in `meta.json` and in its manifest.
pub const CHECKPOINT_KIND: &str = "checkpoint";

/// `meta.json` at the root of a checkpoint generation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// [`LAYOUT_FORMAT`].
    pub format: u32,
    /// Always [`CHECKPOINT_KIND`].
    pub kind: String,
    /// The job name.
    pub job: String,
    /// The host the checkpoint was taken on (the coordinator's, for a coordinated one).
    pub host: String,
    /// The cairn version that wrote it.
    pub cairn_version: String,
    /// The ids of the agents whose trees are under `agents/` (what restore reads).
    pub agents: Vec<String>,
    /// Where each agent ran (informational; written by a coordinator only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_details: Vec<AgentDetail>,
}

/// Where one agent of a coordinated checkpoint ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentDetail {
    /// The agent id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its pid.
    pub pid: u32,
}

impl Meta {
    /// The metadata of a checkpoint of `job` by `agents`, taken on `host` now.
    pub fn new(job: &str, host: &str, agents: Vec<String>) -> Self {
        Meta {
            format: LAYOUT_FORMAT,
            kind: CHECKPOINT_KIND.into(),
            job: job.into(),
            host: host.into(),
            cairn_version: env!("CARGO_PKG_VERSION").into(),
            agents,
            agent_details: Vec::new(),
        }
    }
}

/// This machine's host name ("unknown" if it cannot be read).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Writes the root tree of a generation: `meta` as `meta.json` and the agents' trees under
/// `agents/`, in the order given (`meta.agents` names them).
pub fn write_root(
    writer: &mut Writer,
    meta: &Meta,
    agents: Vec<(String, StreamRef)>,
) -> Result<StreamRef, StoreError> {
    let meta_json = serde_json::to_vec_pretty(meta)
        .map_err(|e| StoreError::InvalidArgument(format!("cannot serialize meta.json: {e}")))?;
    let meta_ref = writer.put_blob(&meta_json)?;
    let agents_ref = writer.put_tree(agents)?;
    writer.put_tree(vec![
        ("meta.json".into(), meta_ref),
        ("agents".into(), agents_ref),
    ])
}

fn bad(reader: &GenerationReader, path: &str, reason: impl ToString) -> AgentError {
    AgentError::BadImage {
        generation: reader.generation().id.0.to_string(),
        path: path.into(),
        reason: reason.to_string(),
    }
}

/// Reads and checks `meta.json` of a generation.
pub fn read_meta(reader: &GenerationReader) -> Result<Meta, AgentError> {
    let s = reader.lookup("meta.json").map_err(|e| match e {
        StoreError::NotFound(_) => bad(reader, "meta.json", "missing: not a checkpoint"),
        other => AgentError::Store(other),
    })?;
    let bytes = reader.read_all(&s)?;
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| bad(reader, "meta.json", e))?;
    if meta.kind != CHECKPOINT_KIND {
        return Err(bad(
            reader,
            "meta.json",
            format!("kind is {:?}, not a checkpoint", meta.kind),
        ));
    }
    if meta.format != LAYOUT_FORMAT {
        return Err(bad(
            reader,
            "meta.json",
            format!("unsupported format {}", meta.format),
        ));
    }
    Ok(meta)
}

/// The directory of agent `id` inside a generation.
pub fn agent_base(id: &str) -> String {
    format!("agents/{id}")
}

/// Reads agent `id`'s captured image.
pub fn read_image<I: DeserializeOwned>(
    reader: &GenerationReader,
    id: &str,
) -> Result<I, AgentError> {
    let path = format!("{}/image.json", agent_base(id));
    let s = reader.lookup(&path)?;
    let bytes = reader.read_all(&s)?;
    serde_json::from_slice(&bytes).map_err(|e| bad(reader, &path, e))
}
