//! Agents that fail, vanish before or right after reporting, in random mixes over many
//! rounds: the coordinator keeps serving, commits exactly when every participant stored its
//! image, and every committed generation is complete.

mod common;

use cairn_coordinator::client::CommandClient;
use cairn_coordinator::protocol::{Request, Response};
use common::*;

/// xorshift64*: a fixed seed keeps failures reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Store,
    Fail,
    Disconnect,
    StoreThenDisconnect,
}

fn ask(h: &Harness, req: Request) -> Response {
    CommandClient::connect(&h.addr)
        .unwrap()
        .request(&req)
        .unwrap()
}

fn agents_now(h: &Harness) -> usize {
    match ask(h, Request::Status) {
        Response::Status(s) => s.agents,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn random_agent_failures_never_commit_partial_generations() {
    let h = start();
    let mut rng = Rng(0x00C0_FFEE_1234_5678);
    let mut committed = Vec::new();
    for round in 0..24 {
        let n = 1 + rng.below(3) as usize;
        let kinds: Vec<Kind> = (0..n)
            .map(|_| match rng.below(6) {
                0 => Kind::Fail,
                1 => Kind::Disconnect,
                2 => Kind::StoreThenDisconnect,
                _ => Kind::Store,
            })
            .collect();
        let agents: Vec<TestAgent> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let behavior = match k {
                    Kind::Store => Behavior::Store,
                    Kind::Fail => Behavior::Fail,
                    Kind::Disconnect => Behavior::Disconnect,
                    Kind::StoreThenDisconnect => Behavior::StoreThenDisconnect,
                };
                spawn_agent(&h, "job", &format!("r{round}-a{i}"), behavior)
            })
            .collect();
        let all_store = kinds.iter().all(|k| *k == Kind::Store);
        let any_bad = kinds
            .iter()
            .any(|k| matches!(k, Kind::Fail | Kind::Disconnect));
        match ask(&h, Request::Checkpoint { wait: true }) {
            Response::CheckpointCommitted(r) => {
                assert!(!any_bad, "round {round} {kinds:?} committed");
                assert_eq!(r.agents, n);
                let reader = h.store().reader(r.generation).unwrap();
                for a in &agents {
                    let image = reader
                        .read_all(
                            &reader
                                .lookup(&format!("agents/{}/image.json", a.id))
                                .unwrap(),
                        )
                        .unwrap();
                    assert_eq!(image, image_json(&a.id, r.token).as_bytes());
                    let mem = reader
                        .read_all(&reader.lookup(&format!("agents/{}/mem/0", a.id)).unwrap())
                        .unwrap();
                    assert_eq!(mem.len() as u64, MEMORY_LEN);
                }
                let names = reader
                    .tree_entries(&reader.lookup("agents").unwrap())
                    .unwrap();
                assert_eq!(names.len(), n);
                committed.push(r.generation);
            }
            Response::CheckpointFailed { reason, .. } => {
                assert!(!all_store, "round {round} {kinds:?} failed: {reason}");
            }
            other => panic!("round {round}: unexpected {other:?}"),
        }
        // End the round: the survivors are killed and leave.
        match ask(&h, Request::Kill) {
            Response::Done { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        for a in agents {
            a.join();
        }
        wait_for("the agents to leave", || agents_now(&h) == 0);
    }
    let gens: Vec<_> = h
        .store()
        .generations(Some("job"))
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(gens, committed);
    assert!(
        !committed.is_empty(),
        "the seed produced no successful round"
    );
}
