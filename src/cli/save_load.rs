//! `cairn save` and `cairn load`: arguments and rendering; the files generation kind itself
//! is `cairn_engine::save_load`.

use std::path::PathBuf;

use cairn_engine::save_load::{self, SaveLoadError};
use clap::Args;

use crate::cli::common::{human_bytes, print_json, StoreOpt};
use crate::exit::usage;

/// `cairn save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Job name the generation belongs to.
    #[arg(long)]
    pub job: String,
    /// Files and directories to save.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
}

/// `cairn load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Job name.
    #[arg(long)]
    pub job: String,
    /// Generation id (default: the newest consistent generation of the job).
    #[arg(long)]
    pub generation: Option<u64>,
    /// Directory to write the files into (created if missing; files in it are replaced).
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
}

/// An engine error with the exit code it stands for (2 for the user's mistakes).
fn cli_err(e: SaveLoadError) -> anyhow::Error {
    match e {
        SaveLoadError::Usage(msg) => usage(msg),
        SaveLoadError::Plain(e) => anyhow::Error::new(e),
        e => anyhow::Error::new(e),
    }
}

/// Run `cairn save`.
pub fn save(a: SaveArgs) -> anyhow::Result<i32> {
    let store = a.opt.open()?;
    let saved = save_load::save(&store, &a.job, &a.paths).map_err(cli_err)?;
    if a.opt.json {
        print_json(&serde_json::json!({
            "generation": saved.generation.0,
            "job": a.job,
            "entries": saved.entries,
            "stats": saved.stats,
        }))?;
    } else {
        println!(
            "saved generation {} of job {}: {} entries, {} logical, {} new",
            saved.generation,
            a.job,
            saved.entries,
            human_bytes(saved.stats.logical_bytes),
            human_bytes(saved.stats.new_stored_bytes)
        );
    }
    Ok(0)
}

/// Run `cairn load`.
pub fn load(a: LoadArgs) -> anyhow::Result<i32> {
    let store = a.opt.open()?;
    let (gen, skipped) = save_load::choose(&store, &a.job, a.generation).map_err(cli_err)?;
    for s in skipped {
        eprintln!("cairn: warning: skipped generation {}: {}", s.id, s.reason);
    }
    let entries = save_load::load(&store, &gen, &a.to).map_err(cli_err)?;
    if a.opt.json {
        print_json(&serde_json::json!({
            "generation": gen.id.0,
            "job": gen.job,
            "to": a.to,
            "entries": entries,
        }))?;
    } else {
        println!(
            "loaded generation {} of job {} into {}: {} entries",
            gen.id,
            gen.job,
            a.to.display(),
            entries
        );
    }
    Ok(0)
}
