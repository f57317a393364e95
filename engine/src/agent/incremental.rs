//! What an agent remembers between checkpoints to make the next one incremental: the memory
//! stream of every mapping in the last committed checkpoint, so that regions dirty-page
//! tracking proves partly clean reuse its chunks (docs/incremental.md).

use std::collections::HashMap;

use cairn_store::{Store, StreamKind, StreamRef};

use crate::layout;

/// Identity of a captured mapping: (pid in the job, start, end, PROT_* bits).
pub type RegionKey = (i32, u64, u64, u32);

/// Memory streams of the mappings of one checkpoint.
pub type Baseline = HashMap<RegionKey, StreamRef>;

/// Pages read and pages skipped while writing a checkpoint's memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Pages read from the program and hashed (while it ran, by the pre-copy, and while it
    /// was frozen).
    pub scanned: u64,
    /// Pages of captured mappings not read while the program was frozen: proven unchanged
    /// since the previous checkpoint or since this checkpoint's pre-copy (their chunks
    /// reused), or not resident.
    pub skipped: u64,
}

/// Whether dirty-page tracking is wanted (`CAIRN_DIRTY_TRACKING` is not `0`).
pub fn tracking_enabled() -> bool {
    cairn_capture::dirty::enabled_by_env()
}

/// The memory streams of agent `agent` in generation `generation`, keyed as the capture of
/// the restored program will key its mappings: the baseline of the first checkpoint after a
/// restart. Its mappings are not tracked yet, so that checkpoint compares their contents
/// with these streams (`Writer::put_memory_diff`) and stores only the pages that differ.
/// Empty when the generation cannot be read as a checkpoint of that agent (the checkpoint
/// is then written in full, as for a new job).
pub fn restored_baseline(store: &Store, generation: u64, agent: &str) -> Baseline {
    let mut out = Baseline::new();
    let Ok(reader) = store.reader(cairn_store::GenerationId(generation)) else {
        return out;
    };
    let Ok(image) = layout::read_image::<serde_json::Value>(&reader, agent) else {
        return out;
    };
    let processes = image["processes"].as_array().cloned().unwrap_or_default();
    for p in &processes {
        let Some(pid) = p["pid"].as_i64().and_then(|v| i32::try_from(v).ok()) else {
            continue;
        };
        let path = format!("{}/mem/{pid}", layout::agent_base(agent));
        let Ok(entries) = reader.lookup(&path).and_then(|t| reader.tree_entries(&t)) else {
            continue;
        };
        let vmas = p["vmas"].as_array().cloned().unwrap_or_default();
        for (name, s) in entries {
            let Some(v) = name.parse::<usize>().ok().and_then(|i| vmas.get(i)) else {
                continue;
            };
            let (Some(start), Some(end), Some(prot)) = (
                v["start"].as_u64(),
                v["end"].as_u64(),
                v["prot"].as_u64().and_then(|x| u32::try_from(x).ok()),
            ) else {
                continue;
            };
            if s.kind == StreamKind::Memory && end.checked_sub(start) == Some(s.len) {
                out.insert((pid, start, end, prot), s);
            }
        }
    }
    out
}
