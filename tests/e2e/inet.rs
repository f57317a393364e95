//! TCP and UDP sockets across checkpoint → kill -9 → restart cycles: programs whose
//! processes talk to each other over 127.0.0.1 (a TCP server and clients, a UDP pair, Python
//! multiprocessing's manager, Redis, a pyzmq pipeline) give their native output after three
//! cycles, as root and as an unprivileged user; connections to a server outside the job are refused
//! by default (every one named) or, with `--external-tcp close`, restored as reset so that
//! the program reconnects.

use cairn_testkit::{self as common, differential, Area, Cycles, Program};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn script(name: &str, args: &[&str], user: Option<&str>) -> Program {
    let prog = Program::script("/usr/bin/python3", name, args);
    match user {
        Some(u) => {
            common::open_up(&common::programs_dir().join(name));
            prog.run_as(u)
        }
        None => prog,
    }
}

fn stream(user: Option<&str>) {
    let mut prog = Program::script("sh", "tcp_stream.sh", &[]);
    if let Some(u) = user {
        for f in ["tcp_stream.sh", "tcp_stream.py"] {
            common::open_up(&common::programs_dir().join(f));
        }
        prog = prog.run_as(u);
    }
    let out = differential(
        &prog,
        &format!("tcp-stream-{}", user.unwrap_or("root")),
        &Cycles::default(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("server: 3 clients, 36000000 bytes"), "{text}");
}

/// A TCP server and three clients started by one shell script exchange 12 MB each way with
/// a checksum of every block: the same output as natively after three cycles.
#[test]
fn tcp_server_and_clients_stream_with_checksums() {
    let _area = Area::enter(module_path!());
    stream(None);
}

#[test]
fn tcp_server_and_clients_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    stream(Some(common::TEST_USER));
}

/// A UDP client and server (two processes) in request/response.
#[test]
fn udp_request_response() {
    let _area = Area::enter(module_path!());
    differential(
        &script("udp_pair.py", &["600"], None),
        "udp-pair",
        &Cycles::default(),
    );
}

#[test]
fn udp_request_response_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    let prog = script("udp_pair.py", &["600"], Some(common::TEST_USER));
    differential(&prog, "udp-pair-user", &Cycles::default());
}

/// Python multiprocessing with a SyncManager over TCP: the manager's server process and four
/// workers, each proxy a connection of its own.
#[test]
fn python_multiprocessing_manager_over_tcp() {
    let _area = Area::enter(module_path!());
    differential(
        &script("mp_manager.py", &["150"], None),
        "mp-manager",
        &Cycles::default(),
    );
}

#[test]
fn python_multiprocessing_manager_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    let prog = script("mp_manager.py", &["150"], Some(common::TEST_USER));
    differential(&prog, "mp-manager-user", &Cycles::default());
}

/// A line server outside the job on 127.0.0.1 (a thread of the test): every line is
/// answered with "answer to LINE" (numbered: "answer on connection K to LINE", K counting the
/// connections it accepted from 1). Stops when dropped.
struct Outside {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl Outside {
    fn start() -> Outside {
        Outside::start_with(false)
    }

    fn start_with(numbered: bool) -> Outside {
        let l = TcpListener::bind("127.0.0.1:0").expect("binding the outside server");
        l.set_nonblocking(true).expect("a non-blocking listener");
        let port = l.local_addr().expect("its address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let s = stop.clone();
        let count = accepted.clone();
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let k = count.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = c.set_nonblocking(false);
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                    let mut w = match c.try_clone() {
                        Ok(w) => w,
                        Err(_) => return,
                    };
                    let mut r = BufReader::new(c);
                    let mut line = String::new();
                    while !s.load(Ordering::Relaxed) {
                        match r.read_line(&mut line) {
                            Ok(0) => return,
                            Ok(_) => {
                                let answer = if numbered {
                                    format!("answer on connection {k} to {}", line.trim_end())
                                } else {
                                    format!("answer to {}", line.trim_end())
                                };
                                if writeln!(w, "{answer}").is_err() {
                                    return;
                                }
                                line.clear();
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => return,
                        }
                    }
                });
            }
        });
        Outside {
            port,
            stop,
            accepted,
        }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn reconnecting_client(user: Option<&str>, policy: &str) {
    let server = Outside::start();
    let port = server.port.to_string();
    let prog = script("tcp_reconnect.py", &[&port, "150"], user);
    let cycles = Cycles {
        launch_args: vec!["--external-tcp".into(), policy.into()],
        ..Cycles::default()
    };
    let job = format!("tcp-reconnect-{policy}-{}", user.unwrap_or("root"));
    let out = differential(&prog, &job, &cycles);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("answer to request 149\n"), "{text}");
}

/// `--external-tcp close`: the client's connection to a server outside the job comes back
/// reset; the client reconnects and finishes with the native output.
#[test]
fn external_connection_closed_by_policy_and_the_client_reconnects() {
    let _area = Area::enter(module_path!());
    reconnecting_client(None, "close");
}

#[test]
fn external_connection_closed_by_policy_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    reconnecting_client(Some(common::TEST_USER), "close");
}

/// `--external-tcp repair` and a kill -9 after an ordinary checkpoint (the job ran on, and
/// its death closed the connection): the connection comes back reset, as with `close`; the
/// client reconnects and finishes with the native output.
#[test]
fn external_connection_under_repair_is_reset_after_a_kill() {
    let _area = Area::enter(module_path!());
    reconnecting_client(None, "repair");
}

/// `--external-tcp repair` (root) with `cairn run`: each stop (SIGTERM: final checkpoint,
/// then stop) keeps the client's one connection to a server outside the job in place with
/// TCP repair mode, the next `cairn run` makes it again where it was; after three stops the
/// server has seen one connection, never closed early, and every answer came over it in order.
#[test]
fn external_connection_repaired_in_place_across_stops() {
    let _area = Area::enter(module_path!());
    let server = Outside::start_with(true);
    let port = server.port.to_string();
    let prog = script("tcp_outside_client.py", &[&port, "300"], None);
    let scratch = common::Scratch::new();
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    let args = ["--external-tcp", "repair"];
    let stdout = dir.join("stdout");
    let answers = || {
        std::fs::read_to_string(&stdout)
            .unwrap_or_default()
            .matches("answer on")
            .count()
    };
    let mut logs = String::new();
    for stop in 1..=3 {
        let job = common::Job::start(&prog, "run", &store, "repair", &args, &dir, true);
        let want = answers() + 20;
        common::wait_for("twenty more answers", Duration::from_secs(60), || {
            answers() >= want
        });
        job.signal(libc::SIGTERM);
        let log = job.log_text();
        let code = job.wait(Duration::from_secs(60));
        logs.push_str(&log);
        assert_eq!(code, 75, "stop {stop} did not checkpoint and stop:\n{logs}");
    }
    let job = common::Job::start(&prog, "run", &store, "repair", &args, &dir, true);
    let log = job.log_text();
    assert_eq!(job.wait(Duration::from_secs(120)), 0, "{logs}{log}");
    let text = std::fs::read_to_string(&stdout).unwrap_or_default();
    let first = text.lines().next().unwrap_or_default();
    let from = first.strip_prefix("connected from port ").unwrap_or("?");
    let mut want = format!("{first}\n");
    for i in 0..300 {
        want.push_str(&format!("answer on connection 1 to request {i}\n"));
    }
    want.push_str(&format!("still from port {from}\n"));
    assert_eq!(text, want, "{logs}");
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1, "{logs}");
}

/// `--external-tcp repair`: a final checkpoint that fails (a zero-length datagram the
/// program holds is refused, after the connection was read and held in repair mode) lets
/// the program run on over its connection as if nothing happened: it finishes on it.
#[test]
fn failed_final_checkpoint_leaves_the_repaired_connection_working() {
    let _area = Area::enter(module_path!());
    let server = Outside::start_with(true);
    let port = server.port.to_string();
    let prog = script("tcp_outside_client.py", &[&port, "150", "zero"], None);
    let scratch = common::Scratch::new();
    let dir = scratch.sub("cairn");
    let args = ["--external-tcp", "repair"];
    let stdout = dir.join("stdout");
    let mut job = common::Job::start(&prog, "run", &scratch.store(), "held", &args, &dir, true);
    common::wait_for("an answer", Duration::from_secs(60), || {
        std::fs::read_to_string(&stdout).is_ok_and(|t| t.contains("to request 5\n"))
    });
    job.signal(libc::SIGTERM);
    assert!(
        job.wait_for_lines("final checkpoint failed", 1, Duration::from_secs(60)),
        "{}",
        job.log_text()
    );
    let log = job.log_text();
    assert!(log.contains("zero-length datagram"), "{log}");
    assert_eq!(job.wait(Duration::from_secs(60)), 0, "{log}");
    let text = std::fs::read_to_string(&stdout).unwrap_or_default();
    assert!(
        text.contains("answer on connection 1 to request 149\nstill from port"),
        "{text}"
    );
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

/// `--external-tcp repair` needs the kernel's TCP repair mode (CAP_NET_ADMIN): an ordinary
/// user is told so before anything starts.
#[test]
fn repair_policy_is_refused_to_an_ordinary_user() {
    let _area = Area::enter(module_path!());
    let out = std::process::Command::new("runuser")
        .args(["-u", common::TEST_USER, "--"])
        .arg(common::cairn())
        .args(["launch", "--store", "/nonexistent", "--job", "j"])
        .args(["--external-tcp", "repair", "--", "true"])
        .output()
        .expect("running cairn as the test user");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("repair needs root") && err.contains("use close"),
        "{err}"
    );
}

/// By default a checkpoint of a job with connections to a server outside it fails, naming
/// every such connection with its addresses; the job runs on to its native end.
#[test]
fn external_connections_are_refused_by_default_all_named() {
    let _area = Area::enter(module_path!());
    let server = Outside::start();
    let port = server.port.to_string();
    let prog = script("tcp_reconnect.py", &[&port, "60", "2"], None);
    let scratch = common::Scratch::new();
    let dir = scratch.sub("cairn");
    let mut job = common::Job::start(
        &prog,
        "launch",
        &scratch.store(),
        "outside",
        &[],
        &dir,
        true,
    );
    let stdout = dir.join("stdout");
    common::wait_for("the first answer", Duration::from_secs(60), || {
        std::fs::read_to_string(&stdout).is_ok_and(|t| t.contains("answer to request 1\n"))
    });
    job.signal(libc::SIGUSR1);
    assert!(
        job.wait_for_lines("checkpoint failed", 1, Duration::from_secs(60)),
        "{}",
        job.log_text()
    );
    let log = job.log_text();
    let named = log.matches(&format!(" -> 127.0.0.1:{port}")).count();
    assert!(
        log.contains("whose peer is not a process of the job") && named == 3,
        "expected 3 connections named in:\n{log}"
    );
    assert_eq!(job.wait(Duration::from_secs(60)), 0, "{log}");
    let text = std::fs::read_to_string(&stdout).unwrap_or_default();
    assert!(text.ends_with("answer to request 59\n"), "{text}");
}

fn redis(user: Option<&str>) {
    let mut prog = Program::script("sh", "redis_job.sh", &[]);
    if let Some(u) = user {
        for f in ["redis_job.sh", "redis_client.py"] {
            common::open_up(&common::programs_dir().join(f));
        }
        prog = prog.run_as(u);
    }
    let job = format!("redis-{}", user.unwrap_or("root"));
    let out = differential(&prog, &job, &Cycles::default());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("done\n"), "{text}");
}

/// redis-server (from Debian) and a client of it in one job, over TCP on 127.0.0.1.
#[test]
fn redis_server_and_client() {
    let _area = Area::enter(module_path!());
    redis(None);
}

#[test]
fn redis_server_and_client_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    redis(Some(common::TEST_USER));
}

fn zmq(user: Option<&str>) {
    let prog = script("zmq_pipeline.py", &["500"], user);
    let job = format!("zmq-pipeline-{}", user.unwrap_or("root"));
    let out = differential(&prog, &job, &Cycles::default());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("done\n"), "{text}");
}

/// A three-process pyzmq pipeline (PUSH/PULL over TCP, libzmq's I/O threads and eventfds).
#[test]
fn pyzmq_pipeline() {
    let _area = Area::enter(module_path!());
    zmq(None);
}

#[test]
fn pyzmq_pipeline_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    zmq(Some(common::TEST_USER));
}
