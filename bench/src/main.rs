//! `cairn-bench`: the store and gc benchmarks of docs/performance.md, outside the product.

mod exit;
mod gc;
mod output;
mod store;

use clap::{Parser, Subcommand};

/// cairn-bench: benchmarks of the cairn store and gc on synthetic memory images.
#[derive(Parser, Debug)]
#[command(name = "cairn-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
enum Command {
    /// Ingest, second-generation and reassembly throughput of the store.
    Store(store::BenchStoreArgs),
    /// prune --keep-last N and gc on a store of many generations of one job.
    Gc(gc::BenchGcArgs),
}

fn main() {
    let cli = Cli::parse();
    exit::finish(match cli.command {
        Command::Store(a) => store::bench_store(a),
        Command::Gc(a) => gc::bench_gc(a),
    })
}
