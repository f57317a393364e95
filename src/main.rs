//! The `cairn` command line: one subcommand per verb.

mod cli;
mod exit;

use clap::{Parser, Subcommand};

/// cairn: transparent checkpoint/restart into an incremental, content-addressed store.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Store maintenance: init, stats, reindex, clean.
    #[command(subcommand)]
    Store(cli::store_cmds::StoreCmd),
    /// List the generations in the store.
    Generations(cli::store_cmds::GenerationsArgs),
    /// Drop generations by retention rules (keep-last/within/hourly/daily), with reasons.
    Prune(cli::gc_cmds::PruneArgs),
    /// Reclaim the space of chunks no generation reaches (safe while checkpoints run).
    Gc(cli::gc_cmds::GcArgs),
    /// Check packs and generations (structure, or every byte with --read-data).
    Verify(cli::store_cmds::VerifyArgs),
    /// Save files and directories as a new generation of a job.
    Save(cli::save_load::SaveArgs),
    /// Write a saved generation's files back, byte-identical with modes and mtimes.
    Load(cli::save_load::LoadArgs),
    /// Benchmarks (`cairn bench store`).
    #[command(subcommand)]
    Bench(cli::bench_store::BenchCmd),
}

fn main() {
    let cli = Cli::parse();
    exit::finish(match cli.command {
        Command::Store(c) => cli::store_cmds::store(c),
        Command::Generations(a) => cli::store_cmds::generations(a),
        Command::Prune(a) => cli::gc_cmds::prune(a),
        Command::Gc(a) => cli::gc_cmds::gc(a),
        Command::Verify(a) => cli::store_cmds::verify(a),
        Command::Save(a) => cli::save_load::save(a),
        Command::Load(a) => cli::save_load::load(a),
        Command::Bench(c) => cli::bench_store::bench(c),
    })
}
