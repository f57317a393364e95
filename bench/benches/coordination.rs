//! What the coordinator adds to every checkpoint: fan the request out to N agents, collect
//! their answers, write meta.json and the root tree, and commit the generation (with its
//! fsyncs). The agents answer at once with a subtree stored beforehand, so the capture itself
//! is not measured. Run: `cargo bench -p cairn-bench --bench coordination`.

use std::time::Duration;

use cairn_coordinator::auth::Secret;
use cairn_coordinator::client::{AgentConnection, CommandClient, CoordinatorAddress};
use cairn_coordinator::daemon::{Background, Config, EventLog};
use cairn_coordinator::protocol::{
    AgentStats, CoordinatorMessage, Registration, Request, Response,
};
use cairn_store::{InitOptions, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn checkpoint_round(c: &mut Criterion) {
    let mut group = c.benchmark_group("checkpoint_round");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for agents in [1usize, 8, 32] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_path = dir.path().join("store");
        let store = Store::init(&store_path, InitOptions::default()).expect("store");
        let secret = Secret::generate();
        let coordinator = Background::start(Config {
            bind: "127.0.0.1".parse().expect("address"),
            port: 0,
            secret: secret.clone(),
            store: Some(store_path.clone()),
            interval_secs: 0,
            checkpoint_timeout_secs: 0,
            exit_on_last: false,
            log: EventLog::disabled(),
        })
        .expect("coordinator");
        let addr = CoordinatorAddress {
            host: "127.0.0.1".into(),
            port: coordinator.addr().port(),
            secret,
        };
        let mut w = store.writer().expect("writer");
        let blob = w.put_blob(b"{\"image\":true}").expect("blob");
        let root = w.put_tree(vec![("image.json".into(), blob)]).expect("tree");
        w.finish().expect("finish");
        let threads: Vec<_> = (0..agents)
            .map(|i| {
                let reg = Registration {
                    job: "bench".into(),
                    host: "localhost".into(),
                    pid: std::process::id(),
                    agent_id: format!("a{i}"),
                    store: None,
                    barrier: false,
                };
                let mut conn = AgentConnection::connect(&addr, reg).expect("agent");
                let root = root.clone();
                std::thread::spawn(move || {
                    while let Ok(Some(msg)) = conn.recv() {
                        match msg {
                            CoordinatorMessage::Checkpoint { generation_token } => {
                                let stats = AgentStats::default();
                                if conn
                                    .checkpoint_stored(generation_token, root.clone(), stats)
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            CoordinatorMessage::Quit | CoordinatorMessage::Kill => return,
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        let mut client = CommandClient::connect(&addr).expect("client");
        group.bench_with_input(BenchmarkId::from_parameter(agents), &agents, |b, _| {
            b.iter(|| {
                match client
                    .request(&Request::Checkpoint { wait: true })
                    .expect("request")
                {
                    Response::CheckpointCommitted(r) => r.generation,
                    other => panic!("checkpoint failed: {other:?}"),
                }
            })
        });
        coordinator.quit().expect("quit");
        for t in threads {
            let _ = t.join();
        }
    }
    group.finish();
}

criterion_group!(benches, checkpoint_round);
criterion_main!(benches);
