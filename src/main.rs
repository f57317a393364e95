//! The `cairn` command line: one subcommand per verb (src/cli/), nothing else.

mod cli;

use clap::{Parser, Subcommand};

/// cairn: transparent checkpoint/restart into an incremental, content-addressed store.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Run the coordinator of a computation (DMTCP's dmtcp_coordinator).
    Coordinator(cli::coordinator::Args),
    /// Send a command to a running coordinator (DMTCP's dmtcp_command).
    Command(cli::command::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Verb::Coordinator(args) => cli::coordinator::run(args),
        Verb::Command(args) => cli::command::run(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: error: {e:#}");
            cli::fail_rc()
        }
    };
    std::process::exit(code);
}
