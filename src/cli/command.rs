//! `cairn command`: talk to a running coordinator (DMTCP's dmtcp_command).
//!
//! Exit codes (docs/coordinator.md): 0 done; 1 no computation running; 2 bad usage;
//! 3 checkpoint refused (one is running, no store, shutting down); 4 checkpoint failed,
//! nothing committed; 5 no coordinator reachable; 6 authentication failed or no secret;
//! 99 anything else.

use cairn_coordinator::client::{probe, ClientError, CommandClient, CoordinatorAddress};
use cairn_coordinator::protocol::{Refusal, Request, Response};
use clap::ArgGroup;
use std::io::IsTerminal;
use std::time::Duration;

use super::render;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: no computation is running (no agent registered).
pub const EXIT_NO_COMPUTATION: i32 = 1;
/// Exit code: a checkpoint was refused (another running, no store, shutting down).
pub const EXIT_REFUSED: i32 = 3;
/// Exit code: the checkpoint failed; nothing was committed.
pub const EXIT_CHECKPOINT_FAILED: i32 = 4;
/// Exit code: no coordinator reachable.
pub const EXIT_UNREACHABLE: i32 = 5;
/// Exit code: authentication failed or the secret is missing.
pub const EXIT_AUTH: i32 = 6;

/// Arguments of `cairn command`.
#[derive(clap::Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).multiple(false)))]
pub struct Args {
    /// Coordinator host.
    #[arg(long, env = "CAIRN_COORD_HOST", default_value = "localhost")]
    coord_host: String,
    /// Coordinator port.
    #[arg(long, env = "CAIRN_COORD_PORT", default_value_t = 7779)]
    coord_port: u16,
    /// Start a checkpoint and return at once.
    #[arg(long, group = "action")]
    checkpoint: bool,
    /// Checkpoint and wait until the generation is committed; prints its id.
    #[arg(long, group = "action")]
    bcheckpoint: bool,
    /// Show the coordinator's status; exits 1 when no computation is running.
    #[arg(long, group = "action")]
    status: bool,
    /// List the computation's agents.
    #[arg(long, group = "action")]
    list: bool,
    /// Kill the computation's programs (the coordinator keeps running).
    #[arg(long, group = "action")]
    kill: bool,
    /// Kill the programs and stop the coordinator.
    #[arg(long, group = "action")]
    quit: bool,
    /// Set the checkpoint interval in seconds (0 = off).
    #[arg(long, value_name = "SECS", group = "action")]
    interval: Option<u64>,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn request(&self) -> Request {
        if self.checkpoint {
            Request::Checkpoint { wait: false }
        } else if self.bcheckpoint {
            Request::Checkpoint { wait: true }
        } else if self.status {
            Request::Status
        } else if self.list {
            Request::List
        } else if self.kill {
            Request::Kill
        } else if self.quit {
            Request::Quit
        } else {
            Request::SetInterval {
                secs: self.interval.unwrap_or(0),
            }
        }
    }
}

/// Runs `cairn command`; returns the exit code.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let request = args.request();
    let interactive = !args.json && std::io::stderr().is_terminal();
    let waits = request == Request::Checkpoint { wait: true };
    let answer = with_spinner(interactive && waits, "checkpointing", || {
        ask(&args.coord_host, args.coord_port, &request)
    });
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            let code = match &e {
                ClientError::Connect { .. } => EXIT_UNREACHABLE,
                ClientError::Secret(_)
                | ClientError::Rejected(_)
                | ClientError::NotAuthentic(_) => EXIT_AUTH,
                _ => crate::exit::fail_rc(),
            };
            eprintln!("cairn command: {e}");
            return Ok(code);
        }
    };
    print(args, &response);
    Ok(exit_code(&response))
}

/// Runs `f`; if it takes more than a second and `enabled`, shows a spinner on stderr meanwhile.
fn with_spinner<T>(enabled: bool, message: &str, f: impl FnOnce() -> T) -> T {
    if !enabled {
        return f();
    }
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let message = message.to_string();
    let spinner = std::thread::spawn(move || {
        if wait.recv_timeout(Duration::from_secs(1))
            != Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            return;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        let _ = wait.recv();
        bar.finish_and_clear();
    });
    let result = f();
    drop(done);
    let _ = spinner.join();
    result
}

fn ask(host: &str, port: u16, request: &Request) -> Result<Response, ClientError> {
    let addr = match CoordinatorAddress::discover(host, port) {
        Ok(addr) => addr,
        // No secret usually means no coordinator: say "unreachable" when that is the case.
        Err(e) => {
            probe(host, port)?;
            return Err(e);
        }
    };
    let mut client = CommandClient::connect(&addr)?;
    client.request(request)
}

fn print(args: &Args, response: &Response) {
    if args.json {
        println!("{}", render::json(response));
        return;
    }
    match response {
        // Script-friendly: the generation id alone on stdout, the details on stderr.
        Response::CheckpointCommitted(r) => {
            println!("{}", r.generation);
            eprintln!("{}", render::human(response));
        }
        Response::Refused { .. } | Response::Error { .. } | Response::CheckpointFailed { .. } => {
            eprintln!("cairn command: {}", render::human(response));
        }
        _ => println!("{}", render::human(response)),
    }
}

/// The exit code for an answer (documented in docs/coordinator.md).
pub fn exit_code(response: &Response) -> i32 {
    match response {
        Response::Status(s) if !s.running => EXIT_NO_COMPUTATION,
        Response::Refused {
            kind: Refusal::NoComputation,
            ..
        } => EXIT_NO_COMPUTATION,
        Response::Refused { .. } => EXIT_REFUSED,
        Response::CheckpointFailed { .. } => EXIT_CHECKPOINT_FAILED,
        Response::Error { .. } => crate::exit::fail_rc(),
        _ => EXIT_OK,
    }
}
