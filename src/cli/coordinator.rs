//! `cairn coordinator`: run the coordinator of one computation (DMTCP's dmtcp_coordinator).
//!
//! In the foreground it reads single-letter commands on stdin; with `--daemon` it detaches
//! (new session, stdio closed) and the command returns once the port is open.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use cairn_coordinator::auth::{self, Secret};
use cairn_coordinator::daemon::{Config, Control, Daemon, EventLog};
use cairn_coordinator::protocol::{Request, Response};

use super::render;

/// Set in the environment of the detached child of `--daemon`.
const DAEMON_CHILD_ENV: &str = "CAIRN_COORD_DAEMON_CHILD";

/// Arguments of `cairn coordinator`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TCP port to listen on; 0 picks a free port (see --port-file).
    #[arg(long, short = 'p', env = "CAIRN_COORD_PORT", default_value_t = 7779)]
    port: u16,
    /// Write the port actually used to this file (its secret goes to FILE.secret).
    #[arg(long, value_name = "FILE")]
    port_file: Option<PathBuf>,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Detach and run in the background; returns once the coordinator listens.
    #[arg(long)]
    daemon: bool,
    /// Exit when the last agent disconnects.
    #[arg(long)]
    exit_on_last: bool,
    /// Checkpoint every SECS seconds (0 = off).
    #[arg(long, short = 'i', value_name = "SECS", default_value_t = 0)]
    interval: u64,
    /// Abandon a checkpoint when agents have not answered after SECS seconds (0 = wait).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    checkpoint_timeout: u64,
    /// Store to commit generations into (default: the store the first agent names).
    #[arg(long, env = "CAIRN_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// Append the structured log (JSON lines) to FILE instead of stderr.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// JSON output for stdin commands and the --daemon start line.
    #[arg(long)]
    json: bool,
}

/// Runs `cairn coordinator`; returns the exit code.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let is_child = std::env::var_os(DAEMON_CHILD_ENV).is_some();
    // Still single-threaded here: nothing else can be reading the environment.
    std::env::remove_var(DAEMON_CHILD_ENV);
    if args.daemon && !is_child {
        return spawn_daemon(args);
    }
    match serve(args, is_child) {
        Ok(()) => Ok(0),
        Err(e) if is_child => {
            // The parent is waiting on our stdout for a readiness line: tell it why not.
            println!("error {e:#}");
            Ok(crate::exit::fail_rc())
        }
        Err(e) => Err(e),
    }
}

/// `--daemon`: start a detached copy of ourselves and wait until it listens.
fn spawn_daemon(args: &Args) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("cannot find the cairn executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(DAEMON_CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it only
    // detaches the child from the caller's session and terminal before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the coordinator daemon")?;
    let Some(out) = child.stdout.take() else {
        bail!("cannot read the daemon's start-up line");
    };
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .context("cannot read the daemon's start-up line")?;
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("ready ") {
        let port: u16 = rest.trim().parse().context("bad start-up line")?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({ "port": port, "pid": child.id(), "address": format!("{}:{port}", args.bind) })
            );
        } else {
            eprintln!(
                "cairn coordinator: listening on {}:{port} (pid {})",
                args.bind,
                child.id()
            );
        }
        return Ok(0);
    }
    let status = child.wait().context("waiting for the daemon")?;
    let reason = line.strip_prefix("error ").unwrap_or(line);
    eprintln!("cairn coordinator: error: {reason}");
    Ok(status
        .code()
        .filter(|c| *c != 0)
        .unwrap_or(crate::exit::fail_rc()))
}

fn serve(args: &Args, is_child: bool) -> anyhow::Result<()> {
    let secret = match std::env::var(auth::SECRET_ENV) {
        Ok(text) if !text.is_empty() => {
            Secret::from_hex(&text).with_context(|| format!("${}", auth::SECRET_ENV))?
        }
        _ => Secret::generate(),
    };
    let log = match &args.log {
        Some(path) => EventLog::new(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log {}", path.display()))?,
        )),
        None if is_child => EventLog::disabled(),
        None => EventLog::new(Box::new(std::io::stderr())),
    };
    let store = match &args.store {
        Some(p) => Some(std::path::absolute(p).with_context(|| p.display().to_string())?),
        None => None,
    };
    let config = Config {
        bind: args.bind,
        port: args.port,
        secret: secret.clone(),
        store,
        interval_secs: args.interval,
        checkpoint_timeout_secs: args.checkpoint_timeout,
        exit_on_last: args.exit_on_last,
        log,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let daemon = runtime.block_on(Daemon::bind(config))?;
    let port = daemon.local_addr().port();

    // Handlers go in before the port is published, so a signal is never fatal once a
    // client could know about us.
    let signals = {
        let _guard = runtime.enter();
        TerminationSignals::install().context("cannot install signal handlers")?
    };
    let control = daemon.control();
    runtime.spawn(async move {
        let name = signals.recv().await;
        control.stop(name);
    });

    // The port is ours now: publish the secret, then the port (readers of the port file
    // may connect at once).
    let mut secret_files = vec![auth::default_secret_path(&args.bind.to_string(), port)];
    if let Some(pf) = &args.port_file {
        secret_files.push(auth::secret_path_for_port_file(pf));
    }
    for path in &secret_files {
        secret.write_file(path)?;
    }
    if let Some(pf) = &args.port_file {
        write_port_file(pf, port)?;
    }

    if is_child {
        println!("ready {port}");
        std::io::stdout()
            .flush()
            .context("cannot signal readiness")?;
        detach_stdout();
    } else {
        eprintln!(
            "cairn coordinator listening on {} (pid {}); type ? for commands",
            daemon.local_addr(),
            std::process::id()
        );
        let control = daemon.control();
        let json = args.json;
        std::thread::spawn(move || stdin_commands(&control, json));
    }
    let result = runtime.block_on(daemon.run());
    for path in &secret_files {
        // Remove our secret only if no newer coordinator replaced it.
        if Secret::read_file(path).is_ok_and(|s| s == secret) {
            let _ = std::fs::remove_file(path);
        }
    }
    result?;
    Ok(())
}

/// SIGTERM, SIGINT and SIGHUP stop the coordinator gracefully (see docs/coordinator.md).
struct TerminationSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl TerminationSignals {
    /// Installs the handlers; must run inside the runtime.
    fn install() -> std::io::Result<TerminationSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(TerminationSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the first of them and names it.
    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

fn write_port_file(path: &Path, port: u16) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{port}\n"))
        .with_context(|| format!("cannot write port file {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot write port file {}", path.display()))?;
    Ok(())
}

/// After the readiness line, stdout (a pipe to the exited parent) is pointed at /dev/null so
/// later writes neither fail nor keep the caller's pipe open.
fn detach_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 on two valid descriptors we own; fd 1 is replaced atomically and
        // `null` stays valid for the duration of the call.
        unsafe {
            libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO);
        }
    }
}

const HELP: &str = "commands: l list agents, s status, c checkpoint (waits for the commit), \
k kill the computation, q kill and quit, i [SECS] show or set the interval, ? help";

/// Foreground mode: DMTCP-style single-letter commands, one per line, until end of input.
fn stdin_commands(control: &Control, json: bool) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        let mut words = line.split_whitespace();
        let Some(cmd) = words.next() else { continue };
        let request = match cmd {
            "l" | "L" => Request::List,
            "s" | "S" => Request::Status,
            "c" | "C" => Request::Checkpoint { wait: true },
            "k" | "K" => Request::Kill,
            "q" | "Q" => Request::Quit,
            "i" | "I" => match words.next().map(str::parse::<u64>) {
                Some(Ok(secs)) => Request::SetInterval { secs },
                Some(Err(_)) => {
                    say(
                        json,
                        &error("usage: i SECS (0 turns periodic checkpoints off)"),
                    );
                    continue;
                }
                None => Request::Status,
            },
            "?" | "h" | "help" => {
                if json {
                    println!("{}", serde_json::json!({ "type": "help", "message": HELP }));
                } else {
                    println!("{HELP}");
                }
                continue;
            }
            other => {
                say(
                    json,
                    &error(&format!("unknown command {other:?}; ? for help")),
                );
                continue;
            }
        };
        let interval_only = matches!(cmd, "i" | "I");
        let response = control.blocking_request(request.clone());
        match (&response, interval_only) {
            (Response::Status(s), true) if !json => {
                if s.interval_secs == 0 {
                    println!("interval: off");
                } else {
                    println!("interval: {} s", s.interval_secs);
                }
            }
            _ => say(json, &response),
        }
        if request == Request::Quit {
            break;
        }
    }
}

fn error(message: &str) -> Response {
    Response::Error {
        message: message.to_string(),
    }
}

fn say(json: bool, response: &Response) {
    let text = if json {
        render::json(response)
    } else {
        render::human(response)
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
