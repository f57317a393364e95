//! Test harness: a real coordinator (in a background thread), a real store, and agents that
//! speak the real agent protocol and store real bytes. Only the capture engine is absent:
//! a test agent's "image" is deterministic bytes derived from its id and the token.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cairn_coordinator::auth::Secret;
use cairn_coordinator::client::{AgentConnection, CoordinatorAddress};
use cairn_coordinator::daemon::{Background, Config, EventLog};
use cairn_coordinator::protocol::{AgentStats, CoordinatorMessage, Registration};
use cairn_store::{InitOptions, Store, StreamRef};

/// A running coordinator with its own store.
pub struct Harness {
    pub coordinator: Option<Background>,
    pub addr: CoordinatorAddress,
    pub store_dir: tempfile::TempDir,
    pub log: PathBuf,
}

pub fn start() -> Harness {
    start_with(|_| {})
}

pub fn start_with(tweak: impl FnOnce(&mut Config)) -> Harness {
    let store_dir = tempfile::tempdir().unwrap();
    Store::init(&store_dir.path().join("store"), InitOptions::default()).unwrap();
    let log = store_dir.path().join("coordinator.log");
    let secret = Secret::generate();
    let mut config = Config {
        bind: "127.0.0.1".parse().unwrap(),
        port: 0,
        secret: secret.clone(),
        store: Some(store_dir.path().join("store")),
        interval_secs: 0,
        checkpoint_timeout_secs: 0,
        exit_on_last: false,
        log: EventLog::new(Box::new(std::fs::File::create(&log).unwrap())),
    };
    tweak(&mut config);
    let coordinator = Background::start(config).unwrap();
    let addr = CoordinatorAddress {
        host: "127.0.0.1".to_string(),
        port: coordinator.addr().port(),
        secret,
    };
    Harness {
        coordinator: Some(coordinator),
        addr,
        store_dir,
        log,
    }
}

impl Harness {
    pub fn store_path(&self) -> PathBuf {
        self.store_dir.path().join("store")
    }

    pub fn store(&self) -> Store {
        Store::open(&self.store_path()).unwrap()
    }

    pub fn coordinator(&self) -> &Background {
        self.coordinator.as_ref().unwrap()
    }

    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// What a test agent does when asked to checkpoint.
pub enum Behavior {
    /// Store its image and report it.
    Store,
    /// Report a failure.
    Fail,
    /// Drop the connection without answering.
    Disconnect,
    /// Store and report, then drop the connection at once (agent dies after reporting).
    StoreThenDisconnect,
    /// Wait for a go from the test, then store (to hold a checkpoint open).
    Gated(Receiver<()>),
}

pub struct TestAgent {
    pub id: String,
    pub messages: Arc<Mutex<Vec<CoordinatorMessage>>>,
    thread: Option<JoinHandle<()>>,
}

/// The bytes a test agent stores as its memory for `token`.
pub fn memory_byte(id: &str, token: u64, offset: u64) -> u8 {
    let seed = id
        .bytes()
        .fold(token as u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (offset / 7).wrapping_mul(13).wrapping_add(u64::from(seed)) as u8
}

pub const MEMORY_LEN: u64 = 3 * 65536 + 4096;

pub fn image_json(id: &str, token: u64) -> String {
    format!("{{\"agent\":\"{id}\",\"token\":{token}}}")
}

fn store_image(store_path: &Path, id: &str, token: u64) -> (StreamRef, AgentStats) {
    let store = Store::open(store_path).unwrap();
    let mut w = store.writer().unwrap();
    let image = w.put_blob(image_json(id, token).as_bytes()).unwrap();
    let owned = id.to_string();
    let mem = w
        .put_memory(MEMORY_LEN, &move |off, buf: &mut [u8]| {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = memory_byte(&owned, token, off + i as u64);
            }
            Ok(())
        })
        .unwrap();
    let mem_tree = w.put_tree(vec![("0".to_string(), mem)]).unwrap();
    let root = w
        .put_tree(vec![
            ("image.json".to_string(), image),
            ("mem".to_string(), mem_tree),
        ])
        .unwrap();
    let write = w.finish().unwrap();
    (
        root,
        AgentStats {
            write,
            frozen_ms: 7,
            pages_scanned: MEMORY_LEN / 4096,
            pages_skipped: 0,
        },
    )
}

pub fn registration(job: &str, id: &str) -> Registration {
    Registration {
        job: job.to_string(),
        host: "testhost".to_string(),
        pid: std::process::id(),
        agent_id: id.to_string(),
        store: None,
        barrier: false,
    }
}

/// Registers an agent (synchronously, so the coordinator knows it on return) and runs it in
/// a thread.
pub fn spawn_agent(h: &Harness, job: &str, id: &str, behavior: Behavior) -> TestAgent {
    let mut conn = AgentConnection::connect(&h.addr, registration(job, id)).unwrap();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let seen = messages.clone();
    let store_path = h.store_path();
    let agent_id = id.to_string();
    let thread = std::thread::spawn(move || loop {
        let Ok(Some(msg)) = conn.recv() else { return };
        seen.lock().unwrap().push(msg.clone());
        match msg {
            CoordinatorMessage::Checkpoint { generation_token } => match &behavior {
                Behavior::Store => {
                    let (root, stats) = store_image(&store_path, &agent_id, generation_token);
                    conn.checkpoint_stored(generation_token, root, stats)
                        .unwrap();
                }
                Behavior::Fail => conn
                    .checkpoint_failed(generation_token, "simulated capture failure")
                    .unwrap(),
                Behavior::Disconnect => {
                    conn.close();
                    return;
                }
                Behavior::StoreThenDisconnect => {
                    let (root, stats) = store_image(&store_path, &agent_id, generation_token);
                    conn.checkpoint_stored(generation_token, root, stats)
                        .unwrap();
                    conn.close();
                    return;
                }
                Behavior::Gated(go) => {
                    if go.recv().is_err() {
                        return;
                    }
                    let (root, stats) = store_image(&store_path, &agent_id, generation_token);
                    conn.checkpoint_stored(generation_token, root, stats)
                        .unwrap();
                }
            },
            CoordinatorMessage::Kill | CoordinatorMessage::Quit => return,
            _ => {}
        }
    });
    TestAgent {
        id: id.to_string(),
        messages,
        thread: Some(thread),
    }
}

impl TestAgent {
    /// Waits until the agent thread ended (it was told to stop or lost the connection).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn saw(&self, pred: impl Fn(&CoordinatorMessage) -> bool) -> bool {
        self.messages.lock().unwrap().iter().any(pred)
    }
}

pub fn gate() -> (Sender<()>, Receiver<()>) {
    mpsc::channel()
}

/// Polls `cond` until it holds or 10 s passed.
pub fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    cairn_testkit::wait_for(what, Duration::from_secs(10), cond);
}
