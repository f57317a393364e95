//! Options and helpers shared by the store verbs.

use std::path::PathBuf;

use anyhow::Context;
use cairn_store::Store;
use clap::Args;

use crate::exit::usage;

/// `--store DIR` (or `$CAIRN_STORE`) and `--json`.
#[derive(Args, Debug, Clone)]
pub struct StoreOpt {
    /// Store directory.
    #[arg(long, env = "CAIRN_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl StoreOpt {
    /// The store directory, or a usage error when neither --store nor CAIRN_STORE is given.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        self.store
            .clone()
            .ok_or_else(|| usage("no store given: pass --store DIR or set CAIRN_STORE"))
    }

    /// Open the store (warning when its index had to be rebuilt).
    pub fn open(&self) -> anyhow::Result<Store> {
        let d = self.dir()?;
        let store = Store::open(&d).with_context(|| format!("opening store {}", d.display()))?;
        warn_if_index_rebuilt(&store);
        Ok(store)
    }
}

/// Warns on stderr when opening `store` had to rebuild its index (the index is a cache; the
/// verb goes on).
pub fn warn_if_index_rebuilt(store: &Store) {
    if let Some(why) = store.index_rebuilt() {
        eprintln!("cairn: warning: {}: {why}", store.path().display());
    }
}

/// Print a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Human-readable byte count (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// RFC 3339 UTC time (seconds) of a millisecond timestamp.
pub fn format_time_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}
