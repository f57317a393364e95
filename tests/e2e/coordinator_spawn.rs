//! `connect_or_spawn` starts a coordinator when none answers, and reuses a running one.
//! (It runs in a process of its own: it sets the secret directory in the process's environment,
//! which the other tests' commands would inherit.)

use cairn_coordinator::auth;
use cairn_coordinator::client::{connect_or_spawn_with, CommandClient};
use cairn_coordinator::protocol::{Request, Response};

#[test]
fn connect_or_spawn_starts_a_daemon_once_and_then_finds_it() {
    cairn_testkit::in_own_process(
        "coordinator_spawn::connect_or_spawn_starts_a_daemon_once_and_then_finds_it",
        connect_or_spawn_starts_a_daemon_once_and_then_finds_it_here,
    );
}

fn connect_or_spawn_starts_a_daemon_once_and_then_finds_it_here() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var(auth::SECRET_DIR_ENV, dir.path());
    std::env::remove_var(auth::SECRET_ENV);
    std::env::remove_var(auth::SECRET_FILE_ENV);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let exe = std::path::Path::new(cairn_testkit::cairn());
    let first = connect_or_spawn_with("localhost", port, exe).unwrap();
    assert_eq!(first.port, port);
    let pid = match CommandClient::connect(&first)
        .unwrap()
        .request(&Request::Status)
        .unwrap()
    {
        Response::Status(s) => s.pid,
        other => panic!("unexpected {other:?}"),
    };
    // A second call finds the same coordinator instead of starting another.
    let second = connect_or_spawn_with("127.0.0.1", port, exe).unwrap();
    assert_eq!(second.secret, first.secret);
    match CommandClient::connect(&second)
        .unwrap()
        .request(&Request::Status)
        .unwrap()
    {
        Response::Status(s) => assert_eq!(s.pid, pid),
        other => panic!("unexpected {other:?}"),
    }
    let r = CommandClient::connect(&first)
        .unwrap()
        .request(&Request::Quit)
        .unwrap();
    assert!(matches!(r, Response::Done { .. }));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "daemon did not exit");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // Several launches racing for the same free port end up sharing one coordinator.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let racers: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || connect_or_spawn_with("localhost", port, exe).unwrap()))
        .collect();
    let addrs: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let pids: Vec<u32> = addrs
        .iter()
        .map(|a| {
            match CommandClient::connect(a)
                .unwrap()
                .request(&Request::Status)
                .unwrap()
            {
                Response::Status(s) => s.pid,
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect();
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    let r = CommandClient::connect(&addrs[0])
        .unwrap()
        .request(&Request::Quit)
        .unwrap();
    assert!(matches!(r, Response::Done { .. }));
}
