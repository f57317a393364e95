//! The `cairn` command line: one subcommand per verb (src/cli/), nothing else.

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
    /// Run a program under an agent that checkpoints it into the store.
    Launch(cli::launch::LaunchArgs),
    /// Restart a job from its newest consistent generation (or a named one).
    Restart(cli::restart::RestartArgs),
    /// Launch the first time, resume from the store afterwards; checkpoint and stop on a signal.
    Run(cli::run::RunArgs),
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
    /// Run the coordinator of a computation (DMTCP's dmtcp_coordinator).
    Coordinator(cli::coordinator::Args),
    /// Send a command to a running coordinator (DMTCP's dmtcp_command).
    #[command(name = "command")]
    Ctl(cli::command::Args),
}

/// Verbs that only report (listings, checks, store maintenance, one coordinator command) end
/// quietly when their output is closed early (`cairn generations | head -1`), as other Unix
/// tools do: the default SIGPIPE action. Verbs that run or serve a job keep ignoring SIGPIPE,
/// so that a closed pipe never takes a job down with its agent or coordinator.
fn reports_only(c: &Command) -> bool {
    !matches!(
        c,
        Command::Launch(_) | Command::Restart(_) | Command::Run(_) | Command::Coordinator(_)
    )
}

fn main() {
    let cli = Cli::parse();
    if reports_only(&cli.command) {
        // SAFETY: restoring the default action of SIGPIPE, before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    exit::finish(match cli.command {
        Command::Launch(a) => cli::launch::launch(a),
        Command::Restart(a) => cli::restart::restart(a),
        Command::Run(a) => cli::run::run(a),
        Command::Store(c) => cli::store_cmds::store(c),
        Command::Generations(a) => cli::store_cmds::generations(a),
        Command::Prune(a) => cli::gc_cmds::prune(a),
        Command::Gc(a) => cli::gc_cmds::gc(a),
        Command::Verify(a) => cli::store_cmds::verify(a),
        Command::Save(a) => cli::save_load::save(a),
        Command::Load(a) => cli::save_load::load(a),
        Command::Coordinator(a) => cli::coordinator::run(&a),
        Command::Ctl(a) => cli::command::run(&a),
    })
}
