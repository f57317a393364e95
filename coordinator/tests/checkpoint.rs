//! A computation of several agents is checkpointed as one generation, or not at all.

mod common;

use cairn_coordinator::client::{AgentConnection, ClientError, CommandClient};
use cairn_coordinator::protocol::{CoordinatorMessage, Refusal, Request, Response};
use common::*;

fn ask(h: &Harness, req: Request) -> Response {
    CommandClient::connect(&h.addr)
        .unwrap()
        .request(&req)
        .unwrap()
}

fn status(h: &Harness) -> cairn_coordinator::protocol::StatusReport {
    match ask(h, Request::Status) {
        Response::Status(s) => s,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn two_agents_are_committed_together_as_one_generation() {
    let h = start();
    let a1 = spawn_agent(&h, "job", "a1", Behavior::Store);
    let a2 = spawn_agent(&h, "job", "a2", Behavior::Store);
    let report = match ask(&h, Request::Checkpoint { wait: true }) {
        Response::CheckpointCommitted(r) => r,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(report.agents, 2);
    assert_eq!(report.job, "job");
    assert_eq!(report.frozen_ms, 7);
    assert!(report.logical_bytes >= 2 * MEMORY_LEN);
    assert!(report.bytes_written > 0);

    let store = h.store();
    let gens = store.generations(Some("job")).unwrap();
    assert_eq!(gens.len(), 1);
    assert_eq!(gens[0].id, report.generation);
    assert_eq!(gens[0].info.kind, "checkpoint");
    assert_eq!(gens[0].info.frozen_ms, 7);

    let reader = store.reader(report.generation).unwrap();
    let meta: serde_json::Value = serde_json::from_slice(
        &reader
            .read_all(&reader.lookup("meta.json").unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["format"], 1);
    assert_eq!(meta["kind"], "checkpoint");
    assert_eq!(meta["job"], "job");
    let ids: Vec<&str> = meta["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(meta["agent_details"][1]["id"], "a2");
    assert_eq!(meta["agent_details"][1]["host"], "testhost");
    for id in ["a1", "a2"] {
        let image = reader
            .read_all(&reader.lookup(&format!("agents/{id}/image.json")).unwrap())
            .unwrap();
        assert_eq!(image, image_json(id, report.token).as_bytes());
        let mem = reader
            .read_all(&reader.lookup(&format!("agents/{id}/mem/0")).unwrap())
            .unwrap();
        assert_eq!(mem.len() as u64, MEMORY_LEN);
        assert!(mem
            .iter()
            .enumerate()
            .all(|(i, b)| *b == memory_byte(id, report.token, i as u64)));
    }

    for a in [&a1, &a2] {
        wait_for("the outcome to reach the agent", || {
            a.saw(|m| {
                matches!(m, CoordinatorMessage::CheckpointDone { generation: Some(g), .. }
                    if *g == report.generation)
            })
        });
    }
    let committed: Vec<_> = h
        .log_lines()
        .into_iter()
        .filter(|l| l["event"] == "checkpoint_committed")
        .collect();
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0]["generation"], report.generation.0);
    assert!(committed[0]["duration_ms"].is_u64());
    assert_eq!(committed[0]["frozen_ms"], 7);
    assert_eq!(committed[0]["bytes_written"], report.bytes_written);
    assert_eq!(status(&h).last_generation, Some(report.generation));
}

#[test]
fn one_failing_agent_means_no_generation_and_everyone_resumes() {
    let h = start();
    let a1 = spawn_agent(&h, "job", "a1", Behavior::Store);
    let a2 = spawn_agent(&h, "job", "a2", Behavior::Fail);
    match ask(&h, Request::Checkpoint { wait: true }) {
        Response::CheckpointFailed { reason, .. } => {
            assert!(reason.contains("a2"), "{reason}");
            assert!(reason.contains("simulated capture failure"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(h.store().generations(None).unwrap().is_empty());
    for a in [&a1, &a2] {
        wait_for("the failure to reach the agent", || {
            a.saw(|m| {
                matches!(
                    m,
                    CoordinatorMessage::CheckpointDone {
                        generation: None,
                        ..
                    }
                )
            })
        });
    }
    let s = status(&h);
    assert!(s.running);
    assert_eq!(s.agents, 2);
    assert_eq!(s.checkpoint_in_progress, None);
    assert_eq!(s.last_generation, None);
}

#[test]
fn agent_disconnecting_mid_checkpoint_fails_it_and_service_continues() {
    let h = start();
    let _a1 = spawn_agent(&h, "job", "a1", Behavior::Store);
    let a2 = spawn_agent(&h, "job", "a2", Behavior::Disconnect);
    match ask(&h, Request::Checkpoint { wait: true }) {
        Response::CheckpointFailed { reason, .. } => {
            assert!(reason.contains("a2 disconnected"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    a2.join();
    assert!(h.store().generations(None).unwrap().is_empty());
    wait_for("a2 to be gone", || status(&h).agents == 1);

    // The survivor alone is checkpointed next time.
    let report = match ask(&h, Request::Checkpoint { wait: true }) {
        Response::CheckpointCommitted(r) => r,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(report.agents, 1);
    let reader = h.store().reader(report.generation).unwrap();
    let agents = reader
        .tree_entries(&reader.lookup("agents").unwrap())
        .unwrap();
    let names: Vec<_> = agents.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a1"]);
}

#[test]
fn a_checkpoint_while_one_runs_is_refused_not_interleaved() {
    let h = start();
    let (go, gated) = gate();
    let _a1 = spawn_agent(&h, "job", "a1", Behavior::Gated(gated));
    let token = match ask(&h, Request::Checkpoint { wait: false }) {
        Response::CheckpointStarted { token } => token,
        other => panic!("unexpected {other:?}"),
    };
    match ask(&h, Request::Checkpoint { wait: true }) {
        Response::Refused { kind, reason } => {
            assert_eq!(kind, Refusal::Busy);
            assert!(reason.contains(&token.to_string()), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(status(&h).checkpoint_in_progress, Some(token));
    go.send(()).unwrap();
    wait_for("the commit", || status(&h).last_generation.is_some());
    assert_eq!(h.store().generations(None).unwrap().len(), 1);
    assert_eq!(status(&h).checkpoint_in_progress, None);
}

#[test]
fn checkpoint_without_agents_or_store_is_refused() {
    let h = start();
    match ask(&h, Request::Checkpoint { wait: true }) {
        Response::Refused { kind, .. } => assert_eq!(kind, Refusal::NoComputation),
        other => panic!("unexpected {other:?}"),
    }
    let h2 = start_with(|c| c.store = None);
    let _a = spawn_agent(&h2, "job", "a1", Behavior::Store);
    match ask(&h2, Request::Checkpoint { wait: true }) {
        Response::Refused { kind, .. } => assert_eq!(kind, Refusal::NoStore),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_first_agents_store_is_used_when_the_coordinator_has_none() {
    let h = start_with(|c| c.store = None);
    let mut reg = registration("job", "a1");
    reg.store = Some(h.store_path().display().to_string());
    // Register by hand with a store path, then answer like a storing agent.
    let mut conn = AgentConnection::connect(&h.addr, reg).unwrap();
    let store_path = h.store_path();
    let agent = std::thread::spawn(move || {
        while let Ok(Some(msg)) = conn.recv() {
            if let CoordinatorMessage::Checkpoint { generation_token } = msg {
                let store = cairn_store::Store::open(&store_path).unwrap();
                let mut w = store.writer().unwrap();
                let blob = w.put_blob(b"image").unwrap();
                let root = w.put_tree(vec![("image.json".into(), blob)]).unwrap();
                let write = w.finish().unwrap();
                let stats = cairn_coordinator::protocol::AgentStats {
                    write,
                    ..Default::default()
                };
                conn.checkpoint_stored(generation_token, root, stats)
                    .unwrap();
            }
            if matches!(msg, CoordinatorMessage::Quit) {
                return;
            }
        }
    });
    match ask(&h, Request::Checkpoint { wait: true }) {
        Response::CheckpointCommitted(r) => assert_eq!(r.agents, 1),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(h.store().generations(Some("job")).unwrap().len(), 1);
    drop(h);
    agent.join().unwrap();
}

#[test]
fn registration_rules_are_enforced() {
    let h = start();
    let _a1 = spawn_agent(&h, "job", "a1", Behavior::Store);
    let refused =
        |job: &str, id: &str| match AgentConnection::connect(&h.addr, registration(job, id)) {
            Err(ClientError::Rejected(reason)) => reason,
            Ok(_) => panic!("{job}/{id} was accepted"),
            Err(e) => panic!("unexpected {e}"),
        };
    assert!(refused("job", "a1").contains("already registered"));
    assert!(refused("other", "a2").contains("job"));
    assert!(refused("job", "../evil").contains("invalid agent id"));
    assert!(refused("job", "").contains("invalid agent id"));
    assert_eq!(status(&h).agents, 1);
}

#[test]
fn kill_stops_the_agents_and_quit_stops_the_coordinator() {
    let mut h = start();
    let a1 = spawn_agent(&h, "job", "a1", Behavior::Store);
    let a2 = spawn_agent(&h, "job", "a2", Behavior::Store);
    match ask(&h, Request::Kill) {
        Response::Done { message } => assert!(message.contains('2'), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
    let (m1, m2) = (a1.messages.clone(), a2.messages.clone());
    a1.join();
    a2.join();
    assert!(m1.lock().unwrap().contains(&CoordinatorMessage::Kill));
    assert!(m2.lock().unwrap().contains(&CoordinatorMessage::Kill));
    wait_for("the agents to leave", || !status(&h).running);

    let a3 = spawn_agent(&h, "job", "a3", Behavior::Store);
    let messages = a3.messages.clone();
    match ask(&h, Request::Quit) {
        Response::Done { .. } => {}
        other => panic!("unexpected {other:?}"),
    }
    a3.join();
    assert!(messages.lock().unwrap().contains(&CoordinatorMessage::Quit));
    let coordinator = h.coordinator.take().unwrap();
    coordinator.wait().unwrap();
    assert!(CommandClient::connect(&h.addr).is_err());
}

#[test]
fn exit_on_last_stops_when_the_last_agent_leaves() {
    let mut h = start_with(|c| c.exit_on_last = true);
    let conn = AgentConnection::connect(&h.addr, registration("job", "a1")).unwrap();
    let conn2 = AgentConnection::connect(&h.addr, registration("job", "a2")).unwrap();
    conn.close();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!h.coordinator().is_finished(), "stopped with an agent left");
    conn2.close();
    wait_for("the coordinator to stop", || h.coordinator().is_finished());
    h.coordinator.take().unwrap().wait().unwrap();
}

#[test]
fn periodic_checkpoints_follow_the_interval() {
    let h = start_with(|c| c.interval_secs = 1);
    let _a1 = spawn_agent(&h, "job", "a1", Behavior::Store);
    wait_for("two periodic generations", || {
        h.store().generations(Some("job")).unwrap().len() >= 2
    });
    match ask(&h, Request::SetInterval { secs: 0 }) {
        Response::Done { .. } => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(status(&h).interval_secs, 0);
}

#[test]
fn an_agent_that_never_answers_fails_the_checkpoint_after_the_timeout() {
    let h = start_with(|c| c.checkpoint_timeout_secs = 1);
    let _fast = spawn_agent(&h, "job", "fast", Behavior::Store);
    let (go, gated) = gate();
    let _slow = spawn_agent(&h, "job", "slow", Behavior::Gated(gated));
    match ask(&h, Request::Checkpoint { wait: true }) {
        Response::CheckpointFailed { reason, .. } => {
            assert!(
                reason.contains("slow did not answer within 1 s"),
                "{reason}"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(h.store().generations(None).unwrap().is_empty());
    // Its late answer is ignored; the next checkpoint works once it answers in time.
    go.send(()).unwrap();
    go.send(()).unwrap();
    match ask(&h, Request::Checkpoint { wait: true }) {
        Response::CheckpointCommitted(r) => assert_eq!(r.agents, 2),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn an_agent_can_poll_its_connection_for_requests() {
    use nix::poll::{poll, PollFd, PollFlags};
    use std::os::fd::AsFd;
    let h = start();
    let mut conn = AgentConnection::connect(&h.addr, registration("job", "p1")).unwrap();
    let readable = |conn: &AgentConnection, ms: u16| {
        let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, ms).unwrap() == 1
    };
    assert!(!readable(&conn, 0));
    match ask(&h, Request::Checkpoint { wait: false }) {
        Response::CheckpointStarted { .. } => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(readable(&conn, 5000));
    let token = match conn.recv().unwrap() {
        Some(CoordinatorMessage::Checkpoint { generation_token }) => generation_token,
        other => panic!("unexpected {other:?}"),
    };
    conn.checkpoint_failed(token, "not today").unwrap();
    assert!(readable(&conn, 5000));
    assert!(matches!(
        conn.recv().unwrap(),
        Some(CoordinatorMessage::CheckpointDone {
            generation: None,
            ..
        })
    ));
}
