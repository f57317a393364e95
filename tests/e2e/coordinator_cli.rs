//! End-to-end tests of `cairn coordinator` and `cairn command` (the real binary), with agents
//! that speak the real agent protocol and store real bytes into a real store.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use cairn_coordinator::auth::{self, Secret};
use cairn_coordinator::client::{AgentConnection, CoordinatorAddress};
use cairn_coordinator::protocol::{AgentStats, CoordinatorMessage, Registration};
use cairn_store::{InitOptions, Store};
use cairn_testkit::is_root;

/// How long the coordinator tests wait for a daemon to start, answer or exit.
const WAIT: Duration = Duration::from_secs(15);

fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    cairn_testkit::wait_for(what, WAIT, cond);
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        Store::init(&dir.path().join("store"), InitOptions::default()).unwrap();
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `cairn` with a private secret directory and no coordinator settings inherited.
    fn cairn(&self) -> Command {
        let mut c = Command::new(cairn_testkit::cairn());
        c.env(auth::SECRET_DIR_ENV, self.path("secrets"))
            .env_remove(auth::SECRET_ENV)
            .env_remove(auth::SECRET_FILE_ENV)
            .env_remove("CAIRN_COORD_HOST")
            .env_remove("CAIRN_COORD_PORT")
            .env_remove("CAIRN_STORE")
            .env_remove("CAIRN_FAIL_RC");
        c
    }

    fn command(&self, port: u16, args: &[&str]) -> Output {
        self.cairn()
            .args(["command", "--coord-port", &port.to_string()])
            .args(args)
            .output()
            .unwrap()
    }

    /// `cairn coordinator --daemon --port 0 --port-file F --store S` plus `extra`; returns the port.
    fn daemon(&self, extra: &[&str]) -> u16 {
        let out = self
            .cairn()
            .args(["coordinator", "--daemon", "--port", "0", "--port-file"])
            .arg(self.path("port"))
            .arg("--store")
            .arg(self.path("store"))
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.port()
    }

    /// `cairn coordinator --port 0 --port-file F --log L` plus `extra` in the foreground,
    /// stdin piped, stdout as given; returns the child and its port once the port file exists.
    fn foreground(&self, extra: &[&str], stdout: Stdio) -> (Child, u16) {
        let child = self
            .cairn()
            .args(["coordinator", "--port", "0", "--port-file"])
            .arg(self.path("port"))
            .arg("--log")
            .arg(self.path("log"))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the port file", || self.path("port").exists());
        (child, self.port())
    }

    fn port(&self) -> u16 {
        std::fs::read_to_string(self.path("port"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn address(&self, port: u16) -> CoordinatorAddress {
        CoordinatorAddress {
            host: "127.0.0.1".into(),
            port,
            secret: Secret::read_file(&self.path("port.secret")).unwrap(),
        }
    }

    fn store(&self) -> Store {
        Store::open(&self.path("store")).unwrap()
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An agent in a thread: stores `image.json` and a memory stream for each checkpoint (or
/// fails when `fail`), leaves on Kill/Quit. Returns the messages it saw.
fn agent(
    addr: &CoordinatorAddress,
    store: PathBuf,
    id: &str,
    fail: bool,
) -> JoinHandle<Vec<CoordinatorMessage>> {
    let reg = Registration {
        job: "job".into(),
        host: "testhost".into(),
        pid: std::process::id(),
        agent_id: id.into(),
        store: None,
        barrier: false,
    };
    let mut conn = AgentConnection::connect(addr, reg).unwrap();
    let id = id.to_string();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Ok(Some(msg)) = conn.recv() {
            seen.push(msg.clone());
            match msg {
                CoordinatorMessage::Checkpoint { generation_token } if fail => {
                    conn.checkpoint_failed(generation_token, "disk on fire")
                        .unwrap();
                }
                CoordinatorMessage::Checkpoint { generation_token } => {
                    let store = Store::open(&store).unwrap();
                    let mut w = store.writer().unwrap();
                    let image = w
                        .put_blob(format!("{id}:{generation_token}").as_bytes())
                        .unwrap();
                    let mem = w
                        .put_memory(1 << 18, &|off, buf: &mut [u8]| {
                            for (i, b) in buf.iter_mut().enumerate() {
                                *b = ((off + i as u64) % 251) as u8;
                            }
                            Ok(())
                        })
                        .unwrap();
                    let root = w
                        .put_tree(vec![("image.json".into(), image), ("mem".into(), mem)])
                        .unwrap();
                    let write = w.finish().unwrap();
                    let stats = AgentStats {
                        write,
                        frozen_ms: 3,
                        ..Default::default()
                    };
                    conn.checkpoint_stored(generation_token, root, stats)
                        .unwrap();
                }
                CoordinatorMessage::Kill | CoordinatorMessage::Quit => break,
                _ => {}
            }
        }
        seen
    })
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn daemon_with_port_file_status_bcheckpoint_list_and_quit() {
    let env = Env::new();
    let port = env.daemon(&[]);
    assert_ne!(port, 0);
    let secret_file = env.path("port.secret");
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // No computation yet: --status exits 1.
    let out = env.command(port, &["--status"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("none running"));
    let out = env.command(port, &["--status", "--json"]);
    assert_eq!(code(&out), 1);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["type"], "status");
    assert_eq!(v["running"], false);
    assert_eq!(v["port"], port);
    // A checkpoint with nothing to checkpoint is refused the same way.
    assert_eq!(code(&env.command(port, &["--bcheckpoint"])), 1);

    let addr = env.address(port);
    let a1 = agent(&addr, env.path("store"), "a1", false);
    let a2 = agent(&addr, env.path("store"), "a2", false);
    let out = env.command(port, &["--status"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("2 agent(s)"), "{}", stdout(&out));
    let out = env.command(port, &["--list"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("a1") && stdout(&out).contains("a2"));

    // --bcheckpoint prints the committed generation id alone on stdout.
    let out = env.command(port, &["--bcheckpoint"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let id: u64 = stdout(&out).trim().parse().unwrap();
    let gens = env.store().generations(Some("job")).unwrap();
    assert_eq!(gens.len(), 1);
    assert_eq!(gens[0].id.0, id);
    let reader = env.store().reader(gens[0].id).unwrap();
    assert!(reader.lookup("agents/a1/mem").is_ok());
    assert!(reader.lookup("agents/a2/image.json").is_ok());

    let out = env.command(port, &["--bcheckpoint", "--json"]);
    assert_eq!(code(&out), 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["type"], "checkpoint_committed");
    assert!(v["generation"].as_u64().unwrap() > id);

    let out = env.command(port, &["--checkpoint"]);
    assert_eq!(code(&out), 0);
    wait_for("the third generation", || {
        env.store().generations(Some("job")).unwrap().len() == 3
    });
    assert_eq!(code(&env.command(port, &["--interval", "3600"])), 0);
    let out = env.command(port, &["--status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["interval_secs"], 3600);

    let out = env.command(port, &["--quit"]);
    assert_eq!(code(&out), 0);
    for a in [a1, a2] {
        assert!(a.join().unwrap().contains(&CoordinatorMessage::Quit));
    }
    wait_for("the daemon to exit", || !listening(port));
    wait_for("the secret files to go", || !secret_file.exists());
    // Nobody listens any more: exit code 5.
    assert_eq!(code(&env.command(port, &["--status"])), 5);
}

#[test]
fn exit_codes_for_failed_checkpoints_and_authentication() {
    let env = Env::new();
    let log = env.path("events.log");
    let port = env.daemon(&["--log", log.to_str().unwrap()]);
    let addr = env.address(port);
    let ok = agent(&addr, env.path("store"), "ok", false);
    let bad = agent(&addr, env.path("store"), "bad", true);
    let out = env.command(port, &["--bcheckpoint"]);
    assert_eq!(code(&out), 4, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("disk on fire"));
    assert!(env.store().generations(None).unwrap().is_empty());

    // Without the secret (another secret directory), or with a wrong one: exit 6.
    let out = env
        .cairn()
        .env(auth::SECRET_DIR_ENV, env.path("elsewhere"))
        .args(["command", "--coord-port", &port.to_string(), "--status"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 6);
    let out = env
        .cairn()
        .env(auth::SECRET_ENV, Secret::generate().to_hex())
        .args(["command", "--coord-port", &port.to_string(), "--kill"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 6);
    // ... and nothing was done: both agents are still there.
    let out = env.command(port, &["--status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["agents"], 2);
    // Every refused connection is in the coordinator's log, with its address and why.
    let count = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("\"connection_refused\"")
            .count()
    };
    wait_for("two refusals in the log", || count() >= 2);
    let events = std::fs::read_to_string(&log).unwrap();
    let refused: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("\"connection_refused\""))
        .collect();
    assert_eq!(refused.len(), 2, "{events}");
    assert!(
        refused
            .iter()
            .all(|l| l.contains("127.0.0.1") && l.contains("authentication")),
        "{events}"
    );
    assert!(events.contains("wrong secret"), "{events}");

    // The secret can also come from CAIRN_COORD_SECRET_FILE and the port from the env.
    let out = env
        .cairn()
        .env(auth::SECRET_DIR_ENV, env.path("elsewhere"))
        .env(auth::SECRET_FILE_ENV, env.path("port.secret"))
        .env("CAIRN_COORD_PORT", port.to_string())
        .args(["command", "--kill"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    ok.join().unwrap();
    bad.join().unwrap();
    wait_for("the agents to leave", || {
        code(&env.command(port, &["--status"])) == 1
    });
    assert_eq!(code(&env.command(port, &["--quit"])), 0);
    // Bad usage is exit 2.
    assert_eq!(code(&env.command(port, &["--status", "--kill"])), 2);
    assert_eq!(code(&env.cairn().args(["command"]).output().unwrap()), 2);
}

#[test]
fn daemon_exit_on_last() {
    let env = Env::new();
    let out = env
        .cairn()
        .args([
            "coordinator",
            "--daemon",
            "--exit-on-last",
            "--json",
            "--port",
            "0",
            "--port-file",
        ])
        .arg(env.path("port"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let port = env.port();
    assert_eq!(v["port"], port);
    let addr = env.address(port);
    let reg = |id: &str| Registration {
        job: "job".into(),
        host: "h".into(),
        pid: 1,
        agent_id: id.into(),
        store: None,
        barrier: false,
    };
    let c1 = AgentConnection::connect(&addr, reg("a1")).unwrap();
    let c2 = AgentConnection::connect(&addr, reg("a2")).unwrap();
    c1.close();
    std::thread::sleep(Duration::from_millis(300));
    assert!(listening(port), "exited while an agent was left");
    c2.close();
    wait_for("the daemon to exit", || !listening(port));
}

fn wait_for_line(lines: &mut impl Iterator<Item = String>, pat: &str, seen: &mut String) {
    for line in lines.by_ref() {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(pat) {
            return;
        }
    }
    panic!("no line containing {pat:?} in:\n{seen}");
}

#[test]
fn foreground_reads_single_letter_commands_on_stdin() {
    let env = Env::new();
    let (mut child, port) = env.foreground(
        &["--store", env.path("store").to_str().unwrap()],
        Stdio::piped(),
    );
    let a1 = agent(&env.address(port), env.path("store"), "a1", false);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut seen = String::new();
    let mut say = |s: &str| {
        stdin.write_all(s.as_bytes()).unwrap();
        stdin.flush().unwrap();
    };
    say("s\n");
    wait_for_line(&mut lines, "computation: running", &mut seen);
    say("l\n");
    wait_for_line(&mut lines, "a1", &mut seen);
    say("c\n");
    wait_for_line(&mut lines, "committed", &mut seen);
    say("i 7\n");
    wait_for_line(&mut lines, "interval set to 7", &mut seen);
    say("i\n");
    wait_for_line(&mut lines, "interval: 7 s", &mut seen);
    say("?\n");
    wait_for_line(&mut lines, "commands:", &mut seen);
    say("x\n");
    wait_for_line(&mut lines, "unknown command", &mut seen);
    say("q\n");
    wait_for_line(&mut lines, "quitting", &mut seen);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(a1.join().unwrap().contains(&CoordinatorMessage::Quit));
    assert_eq!(env.store().generations(Some("job")).unwrap().len(), 1);

    // The structured log has one JSON line per checkpoint with its cost.
    let log = std::fs::read_to_string(env.path("log")).unwrap();
    let committed: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["event"] == "checkpoint_committed")
        .collect();
    assert_eq!(committed.len(), 1);
    for key in ["generation", "duration_ms", "frozen_ms", "bytes_written"] {
        assert!(committed[0][key].is_u64(), "{key} missing in {log}");
    }
    assert_eq!(committed[0]["frozen_ms"], 3);
}

#[test]
fn a_second_coordinator_on_a_busy_port_fails_cleanly() {
    let env = Env::new();
    let port = env.daemon(&[]);
    let out = env
        .cairn()
        .args(["coordinator", "--daemon", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 99);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
    // The first one still works with its own secret.
    assert_eq!(code(&env.command(port, &["--status"])), 1);
    assert_eq!(code(&env.command(port, &["--quit"])), 0);
}

/// The secret file is mode 0600 and really unreadable by another user (checked as the
/// unprivileged `cairn-test` user that scripts/setup.sh creates, when running as root).
#[test]
fn other_users_cannot_read_the_secret_or_command_the_coordinator() {
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = env.daemon(&[]);
    let secret = env.path("port.secret");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    if is_root() {
        let out = Command::new("runuser")
            .args(["-u", "cairn-test", "--", "cat"])
            .arg(&secret)
            .output()
            .unwrap();
        assert!(!out.status.success(), "another user read the secret");
        assert!(out.stdout.is_empty());
        // Another user pointing cairn at the secret file gets exit 6 and nothing happens.
        let exe = env.path("cairn-copy");
        std::fs::copy(cairn_testkit::cairn(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new("runuser")
            .args(["-u", "cairn-test", "--", "env"])
            .arg(format!("{}={}", auth::SECRET_FILE_ENV, secret.display()))
            .arg(&exe)
            .args(["command", "--coord-port", &port.to_string(), "--quit"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 6, "{}", String::from_utf8_lossy(&out.stderr));
        assert!(listening(port));
    }
    assert_eq!(code(&env.command(port, &["--quit"])), 0);
    wait_for("the daemon to exit", || !listening(port));
}

#[test]
fn sigterm_stops_the_coordinator_but_not_the_computation() {
    let env = Env::new();
    let (mut child, port) = env.foreground(&[], Stdio::null());
    let a1 = agent(&env.address(port), env.path("store"), "a1", false);
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    assert!(child.wait().unwrap().success());
    // The agent saw the connection close, not an order to stop its programs.
    let seen = a1.join().unwrap();
    assert!(!seen.contains(&CoordinatorMessage::Quit));
    assert!(!seen.contains(&CoordinatorMessage::Kill));
    assert!(!env.path("port.secret").exists());
    let log = std::fs::read_to_string(env.path("log")).unwrap();
    assert!(
        log.contains(r#""event":"stopped""#) && log.contains("SIGTERM"),
        "{log}"
    );
}
