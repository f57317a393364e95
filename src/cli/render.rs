//! Human and JSON rendering of coordinator answers, shared by `cairn command` and the
//! coordinator's stdin commands.

use cairn_coordinator::protocol::{AgentInfo, CommitReport, Response, StatusReport};

/// Renders a response for people (several lines, no trailing newline).
pub fn human(resp: &Response) -> String {
    match resp {
        Response::Status(s) => status(s),
        Response::List { agents } => list(agents),
        Response::CheckpointStarted { token } => format!("checkpoint {token} started"),
        Response::CheckpointCommitted(r) => committed(r),
        Response::CheckpointFailed { token, reason } => {
            format!("checkpoint {token} failed, nothing committed: {reason}")
        }
        Response::Refused { reason, .. } => format!("refused: {reason}"),
        Response::Done { message } => message.clone(),
        Response::Error { message } => format!("error: {message}"),
    }
}

/// Renders a response as one line of JSON.
pub fn json(resp: &Response) -> String {
    serde_json::to_string(resp).unwrap_or_else(|e| {
        serde_json::json!({ "type": "error", "message": e.to_string() }).to_string()
    })
}

fn status(s: &StatusReport) -> String {
    let mut out = format!("coordinator: pid {}, port {}\n", s.pid, s.port);
    if s.running {
        out += &format!(
            "computation: running, job {:?}, {} agent(s)\n",
            s.job.as_deref().unwrap_or(""),
            s.agents
        );
    } else {
        out += "computation: none running\n";
    }
    match s.checkpoint_in_progress {
        Some(t) => out += &format!("checkpoint: {t} in progress\n"),
        None => out += "checkpoint: idle\n",
    }
    match &s.last_generation {
        Some(g) => out += &format!("last generation: {g}\n"),
        None => out += "last generation: none\n",
    }
    if s.interval_secs == 0 {
        out += "interval: off\n";
    } else {
        out += &format!("interval: {} s\n", s.interval_secs);
    }
    out += &format!("store: {}", s.store.as_deref().unwrap_or("(none)"));
    out
}

fn list(agents: &[AgentInfo]) -> String {
    if agents.is_empty() {
        return "no agents".to_string();
    }
    let mut out = format!(
        "{:<20} {:<16} {:>8} {:<20} {:>8}  state",
        "agent", "job", "pid", "host", "age"
    );
    for a in agents {
        let r = &a.registration;
        out += &format!(
            "\n{:<20} {:<16} {:>8} {:<20} {:>7}s  {}",
            r.agent_id,
            r.job,
            r.pid,
            r.host,
            a.connected_secs,
            if a.checkpointing {
                "checkpointing"
            } else {
                "running"
            }
        );
    }
    out
}

fn committed(r: &CommitReport) -> String {
    format!(
        "generation {} committed: job {:?}, {} agent(s), {} ms ({} ms frozen), {} bytes captured, {} bytes written, {} pages scanned, {} skipped",
        r.generation, r.job, r.agents, r.duration_ms, r.frozen_ms, r.logical_bytes, r.bytes_written, r.pages_scanned, r.pages_skipped
    )
}
