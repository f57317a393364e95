//! The `cairn` command line: one subcommand per verb.

use clap::Parser;

/// cairn: transparent checkpoint/restart into an incremental, content-addressed store.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
