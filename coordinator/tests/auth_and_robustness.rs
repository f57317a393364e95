//! Only peers holding the secret are served; bad bytes get an error and never stop the
//! coordinator.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use cairn_coordinator::auth::{Nonce, Secret};
use cairn_coordinator::client::{
    connect_authenticated, AgentConnection, ClientError, CommandClient, CoordinatorAddress,
};
use cairn_coordinator::protocol::frame::{self, HEADER_LEN, MAX_PAYLOAD, VERSION};
use cairn_coordinator::protocol::{
    ClientHandshake, CoordinatorMessage, Request, Response, Role, ServerHandshake,
};
use common::*;

fn status_ok(h: &Harness) -> cairn_coordinator::protocol::StatusReport {
    match CommandClient::connect(&h.addr)
        .unwrap()
        .request(&Request::Status)
        .unwrap()
    {
        Response::Status(s) => s,
        other => panic!("unexpected {other:?}"),
    }
}

fn raw(h: &Harness) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", h.addr.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Reads frames until the coordinator closes the connection.
fn read_until_closed(s: &mut TcpStream) -> Vec<ServerHandshake> {
    let mut out = Vec::new();
    while let Ok(Some(m)) = frame::read_blocking::<ServerHandshake>(s) {
        out.push(m);
    }
    out
}

#[test]
fn a_wrong_secret_is_refused_and_nothing_is_done() {
    let h = start();
    let _a1 = spawn_agent(&h, "job", "a1", Behavior::Store);
    let impostor = CoordinatorAddress {
        secret: Secret::generate(),
        ..h.addr.clone()
    };
    for req in [
        Request::Status,
        Request::Checkpoint { wait: true },
        Request::Kill,
        Request::Quit,
    ] {
        match CommandClient::connect(&impostor) {
            Err(ClientError::Rejected(reason)) => assert!(reason.contains("authentication")),
            Ok(mut c) => panic!(
                "impostor accepted; would have sent {:?}: {:?}",
                req,
                c.request(&req)
            ),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(matches!(
        AgentConnection::connect(&impostor, registration("job", "evil")),
        Err(ClientError::Rejected(_))
    ));
    let s = status_ok(&h);
    assert!(s.running, "the job must still be running");
    assert_eq!(s.agents, 1);
    assert_eq!(s.last_generation, None);
    assert!(h.store().generations(None).unwrap().is_empty());
}

#[test]
fn requests_without_the_handshake_are_not_answered() {
    let h = start();
    let _a1 = spawn_agent(&h, "job", "a1", Behavior::Store);
    // A well-formed request sent instead of the handshake answer.
    let mut s = raw(&h);
    let _challenge: ServerHandshake = frame::read_blocking(&mut s).unwrap().unwrap();
    frame::write_blocking(&mut s, &Request::Quit).unwrap();
    let answers = read_until_closed(&mut s);
    assert_eq!(answers.len(), 1);
    assert!(
        matches!(&answers[0], ServerHandshake::Rejected { reason } if reason.contains("authentication"))
    );
    // A replayed proof for another nonce.
    let mut s = raw(&h);
    let _challenge: ServerHandshake = frame::read_blocking(&mut s).unwrap().unwrap();
    let nonce = Nonce::generate();
    let stale = h.addr.secret.client_proof(&Nonce::generate(), &nonce);
    frame::write_blocking(
        &mut s,
        &ClientHandshake::Auth {
            role: Role::Command,
            nonce: nonce.to_hex(),
            proof: stale.to_hex(),
        },
    )
    .unwrap();
    assert!(matches!(
        read_until_closed(&mut s).as_slice(),
        [ServerHandshake::Rejected { .. }]
    ));
    assert_eq!(status_ok(&h).agents, 1);
}

#[test]
fn garbage_wrong_version_oversized_and_truncated_frames_are_survived() {
    let h = start();
    let _a1 = spawn_agent(&h, "job", "a1", Behavior::Store);

    // Before authentication.
    let mut s = raw(&h);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answers = read_until_closed(&mut s);
    assert!(
        matches!(answers.as_slice(), [ServerHandshake::Challenge { .. }, ServerHandshake::Rejected { reason }] if reason.contains("bad magic"))
    );

    let mut s = raw(&h);
    s.write_all(&frame::encode_raw(VERSION + 1, b"{}").unwrap())
        .unwrap();
    let answers = read_until_closed(&mut s);
    assert!(
        matches!(&answers[1], ServerHandshake::Rejected { reason } if reason.contains("version"))
    );

    let mut s = raw(&h);
    let mut header = frame::encode_raw(VERSION, b"").unwrap();
    header[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    s.write_all(&header).unwrap();
    let answers = read_until_closed(&mut s);
    assert!(
        matches!(&answers[1], ServerHandshake::Rejected { reason } if reason.contains("exceeds"))
    );

    let mut s = raw(&h);
    let frame = frame::encode(&Request::Status).unwrap();
    s.write_all(&frame[..HEADER_LEN + 2]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let answers = read_until_closed(&mut s);
    assert!(answers.len() <= 2);

    // After authentication: a malformed payload is answered and the session continues.
    let mut s = connect_authenticated(&h.addr, Role::Command).unwrap();
    s.write_all(&frame::encode_raw(VERSION, b"{not json").unwrap())
        .unwrap();
    let r: Response = frame::read_blocking(&mut s).unwrap().unwrap();
    assert!(matches!(r, Response::Error { message } if message.contains("malformed")));
    s.write_all(&frame::encode_raw(VERSION, br#"{"type":"launch_missiles"}"#).unwrap())
        .unwrap();
    let r: Response = frame::read_blocking(&mut s).unwrap().unwrap();
    assert!(matches!(r, Response::Error { .. }));
    frame::write_blocking(&mut s, &Request::Status).unwrap();
    let r: Response = frame::read_blocking(&mut s).unwrap().unwrap();
    assert!(matches!(r, Response::Status(ref st) if st.agents == 1));
    // ... but an oversized frame ends it.
    let mut header = frame::encode_raw(VERSION, b"").unwrap();
    header[4..8].copy_from_slice(&((MAX_PAYLOAD + 1) as u32).to_be_bytes());
    s.write_all(&header).unwrap();
    let r: Response = frame::read_blocking(&mut s).unwrap().unwrap();
    assert!(matches!(r, Response::Error { message } if message.contains("exceeds")));
    assert!(frame::read_blocking::<Response>(&mut s).unwrap().is_none());

    // The computation is untouched and checkpoints still work.
    let s = status_ok(&h);
    assert_eq!(s.agents, 1);
    let r = CommandClient::connect(&h.addr)
        .unwrap()
        .request(&Request::Checkpoint { wait: true })
        .unwrap();
    assert!(matches!(r, Response::CheckpointCommitted(_)), "{r:?}");
}

#[test]
fn a_malformed_agent_message_is_answered_and_the_agent_stays() {
    let h = start();
    let mut s = connect_authenticated(&h.addr, Role::Agent).unwrap();
    frame::write_blocking(
        &mut s,
        &cairn_coordinator::protocol::AgentMessage::Register(registration("job", "a1")),
    )
    .unwrap();
    let m: CoordinatorMessage = frame::read_blocking(&mut s).unwrap().unwrap();
    assert!(matches!(m, CoordinatorMessage::Registered { .. }));
    s.write_all(&frame::encode_raw(VERSION, b"[1,2,3]").unwrap())
        .unwrap();
    let m: CoordinatorMessage = frame::read_blocking(&mut s).unwrap().unwrap();
    assert!(matches!(m, CoordinatorMessage::Error { .. }), "{m:?}");
    assert_eq!(status_ok(&h).agents, 1);
    // A frame of another version is answered too, then the agent is dropped.
    s.write_all(&frame::encode_raw(VERSION + 7, b"{}").unwrap())
        .unwrap();
    let m: CoordinatorMessage = frame::read_blocking(&mut s).unwrap().unwrap();
    assert!(
        matches!(&m, CoordinatorMessage::Error { message } if message.contains("version")),
        "{m:?}"
    );
    assert!(frame::read_blocking::<CoordinatorMessage>(&mut s)
        .unwrap()
        .is_none());
    wait_for("the agent to be dropped", || status_ok(&h).agents == 0);
}

#[test]
fn a_silent_connection_does_not_block_others() {
    let h = start();
    let mut idle = raw(&h);
    let _challenge: ServerHandshake = frame::read_blocking(&mut idle).unwrap().unwrap();
    assert!(!status_ok(&h).running);
    let mut half = raw(&h);
    half.write_all(&frame::encode(&Request::Status).unwrap()[..3])
        .unwrap();
    assert!(!status_ok(&h).running);
}

#[test]
fn a_server_without_the_secret_is_detected_by_the_client() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        frame::write_blocking(
            &mut s,
            &ServerHandshake::Challenge {
                nonce: Nonce::generate().to_hex(),
            },
        )
        .unwrap();
        let _auth: Option<ClientHandshake> = frame::read_blocking(&mut s).unwrap();
        frame::write_blocking(
            &mut s,
            &ServerHandshake::Accepted {
                proof: Nonce::generate().to_hex(),
            },
        )
        .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        rest
    });
    let addr = CoordinatorAddress {
        host: "127.0.0.1".into(),
        port,
        secret: Secret::generate(),
    };
    match CommandClient::connect(&addr) {
        Err(ClientError::NotAuthentic(_)) => {}
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("fake coordinator accepted"),
    }
    // The client sent nothing after the failed server proof.
    assert!(fake.join().unwrap().is_empty());
}
