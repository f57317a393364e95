//! UNIX sockets across checkpoint → kill -9 → restart cycles: a python3 job of socket
//! services (tests/programs/unix_services.py: a `socketserver` stream server, a syslog-style
//! datagram logger fed by `logging.handlers.SysLogHandler` and a bound sender) gives its
//! native output under cairn, as root and as an unprivileged user; sockets leading outside
//! the job are refused, all named in one message, and the job runs on. The attributes of each
//! kind of UNIX socket are checked by the conformance programs `tests/conformance/unix_*.c`.

use cairn_testkit::{self as common, differential, Area, Cycles, Program};
use std::time::Duration;

fn services(user: Option<&str>) {
    let mut prog = Program::script("/usr/bin/python3", "unix_services.py", &["150"]);
    if let Some(u) = user {
        common::open_up(&common::programs_dir().join("unix_services.py"));
        prog = prog.run_as(u);
    }
    let job = format!("unix-services-{}", user.unwrap_or("root"));
    let out = differential(&prog, &job, &Cycles::default());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\nlogger: 300 lines, "), "{text}");
    assert!(text.ends_with("\ndone\n"), "{text}");
}

#[test]
fn python_socketserver_and_syslog_logger_survive_three_cycles() {
    let _area = Area::enter(module_path!());
    services(None);
}

#[test]
fn python_socketserver_and_syslog_logger_survive_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    services(Some("cairn-test"));
}

/// A job with an accepted connection to a listener outside the job, a connection that
/// listener has not accepted, and a datagram socket connected to a receiver outside the job:
/// one refusal names all three with the outside addresses; the job finishes unharmed.
#[test]
fn sockets_leading_outside_the_job_are_all_named_in_one_refusal() {
    let _area = Area::enter(module_path!());
    let scratch = common::Scratch::new();
    let dir = scratch.sub("cairn");
    let outside = scratch.sub("outside");
    common::open_up(&outside);
    let daemon = outside.join("daemon.sock");
    let log = outside.join("log.sock");
    let listener = std::os::unix::net::UnixListener::bind(&daemon).unwrap();
    let _rcv = std::os::unix::net::UnixDatagram::bind(&log).unwrap();
    let script = format!(
        "import socket, time, sys\n\
         a = socket.socket(socket.AF_UNIX); a.connect({d:?})\n\
         time.sleep(0.3)\n\
         b = socket.socket(socket.AF_UNIX); b.connect({d:?})\n\
         c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); c.connect({l:?})\n\
         print('connected', flush=True)\n\
         time.sleep(3)\n\
         c.send(b'still here')\n\
         print('done', flush=True)\n",
        d = daemon.to_str().unwrap(),
        l = log.to_str().unwrap()
    );
    let prog = Program {
        argv: vec!["/usr/bin/python3".into(), "-c".into(), script.into()],
        files: Vec::new(),
        shell_prefix: String::new(),
        user: None,
    };
    let mut job = common::Job::start(
        &prog,
        "launch",
        &scratch.store(),
        "outside",
        &[],
        &dir,
        true,
    );
    let (_accepted, _) = listener.accept().unwrap();
    job.wait_stdout("connected");
    job.signal(libc::SIGUSR1);
    assert!(
        job.wait_for_lines("checkpoint failed", 1, Duration::from_secs(60)),
        "{}",
        job.log_text()
    );
    let text = job.log_text();
    assert!(
        text.contains("3 UNIX socket(s) lead outside the job"),
        "{text}"
    );
    assert_eq!(text.matches(daemon.to_str().unwrap()).count(), 2, "{text}");
    assert!(text.contains(log.to_str().unwrap()), "{text}");
    assert!(text.contains("not accepted yet"), "{text}");
    assert_eq!(job.wait(Duration::from_secs(60)), 0, "{text}");
    let out = std::fs::read_to_string(dir.join("stdout")).unwrap_or_default();
    assert!(out.ends_with("done\n"), "{out}");
}
