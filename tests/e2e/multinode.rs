//! Jobs across nodes: the ranks of one computation on two "nodes" (network namespaces on a
//! bridge, `cairn_testkit::Nodes`), the processes of each node under that node's agent, both
//! agents under one coordinator listening on the bridge. A checkpoint is one consistent cut
//! (every agent frozen, the connections between the nodes drained into the image); a
//! restart brings the ranks back on the same nodes or on other nodes (which take the job's
//! addresses along), and the output is the native one. Needs root (namespaces); skipped
//! otherwise.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn_store::{InitOptions, Store};
use cairn_testkit::{
    cairn, comm, compile_c, descendants, generations_json, is_root, wait_for, Area, Nodes, Scratch,
};

const WAIT: Duration = Duration::from_secs(120);
const ITERS: u32 = 300;
const JOB: &str = "ring";

/// A computation on two nodes: the test's nodes, store, coordinator and agents.
struct Cluster {
    nodes: Nodes,
    scratch: Scratch,
    ring: PathBuf,
    port: u16,
    coordinator: u32,
    agents: Vec<Child>,
}

impl Cluster {
    /// Nodes 0 and 1 run the job; nodes 2 and 3 are the "other" nodes of a restart.
    fn new() -> Cluster {
        let nodes = Nodes::create(4);
        let scratch = Scratch::new();
        Store::init(&scratch.store(), InitOptions::default()).unwrap();
        let ring = compile_c("tcp_ring");
        let port_file = scratch.path("port");
        let out = Command::new(cairn())
            .args([
                "coordinator",
                "--daemon",
                "--json",
                "--port",
                "0",
                "--port-file",
            ])
            .arg(&port_file)
            .args(["--bind", &nodes.host_addr().to_string(), "--store"])
            .arg(scratch.store())
            .env("CAIRN_SECRET_DIR", scratch.sub("secrets"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let started: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Cluster {
            port: started["port"].as_u64().unwrap() as u16,
            coordinator: started["pid"].as_u64().unwrap() as u32,
            nodes,
            scratch,
            ring,
            agents: Vec::new(),
        }
    }

    fn secret(&self) -> PathBuf {
        self.scratch.path("port.secret")
    }

    /// The addresses of the 4 ranks: ranks 0 and 2 on node 0, ranks 1 and 3 on node 1.
    fn addrs(&self) -> String {
        (0..4)
            .map(|r| format!("{}:{}", self.nodes.addr(r % 2), 7100 + r))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The shell script of node `n` (its two ranks; rank 0 writes `out.txt`).
    fn script(&self, n: usize) -> String {
        let (p, a) = (self.ring.display(), self.addrs());
        if n == 0 {
            format!("{p} 2 {ITERS} {a} & {p} 0 {ITERS} {a} > out.txt; wait")
        } else {
            format!("{p} 1 {ITERS} {a} & {p} 3 {ITERS} {a}; wait")
        }
    }

    fn dir(&self) -> PathBuf {
        self.scratch.sub("run")
    }

    /// The job run natively on nodes 0 and 1; rank 0's output.
    fn native(&self) -> String {
        let dir = self.scratch.sub("native");
        let mut b = self.nodes.command(1, "sh");
        b.args(["-c", &self.script(1)]).current_dir(&dir);
        let mut b = b.spawn().unwrap();
        let mut a = self.nodes.command(0, "sh");
        let a = a
            .args(["-c", &self.script(0)])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(a.success());
        assert!(b.wait().unwrap().success());
        std::fs::read_to_string(dir.join("out.txt")).unwrap()
    }

    fn cairn_on(&self, node: usize, args: &[&str]) -> Command {
        let mut c = self.nodes.command(node, cairn());
        c.args(args)
            .arg("--store")
            .arg(self.scratch.store())
            .args([
                "--job",
                JOB,
                "--coord-host",
                &self.nodes.host_addr().to_string(),
            ])
            .args(["--coord-port", &self.port.to_string()])
            .env("CAIRN_COORD_SECRET_FILE", self.secret())
            .env_remove("CAIRN_COORD_SECRET")
            .current_dir(self.dir())
            .stdin(Stdio::null());
        c
    }

    fn log(&self, agent: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.scratch.path(&format!("{agent}.log")))
            .unwrap()
    }

    /// Launches agent `a` on node 0 and `b` on node 1.
    fn launch(&mut self) {
        for (n, id) in [(1, "b"), (0, "a")] {
            let child = self
                .cairn_on(n, &["launch", "--agent-id", id])
                .args(["--", "sh", "-c", &self.script(n)])
                .stdout(self.log(id))
                .stderr(self.log(id))
                .spawn()
                .unwrap();
            self.agents.push(child);
        }
        self.wait_lines(10);
    }

    /// Restarts agent `a` on node `na` and `b` on node `nb` from generation `g`.
    fn restart(&mut self, g: u64, na: usize, nb: usize, extra: &[&str]) {
        for (n, id) in [(nb, "b"), (na, "a")] {
            let child = self
                .cairn_on(
                    n,
                    &["restart", "--agent-id", id, "--generation", &g.to_string()],
                )
                .args(extra)
                .stdout(self.log(id))
                .stderr(self.log(id))
                .spawn()
                .unwrap();
            self.agents.push(child);
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir().join("out.txt")).unwrap_or_default()
    }

    fn logs(&self) -> String {
        ["a", "b"]
            .iter()
            .map(|id| {
                let log = std::fs::read_to_string(self.scratch.path(&format!("{id}.log")));
                format!("--- agent {id}:\n{}", log.unwrap_or_default())
            })
            .collect()
    }

    /// Waits until rank 0 has printed `n` lines.
    fn wait_lines(&self, n: usize) {
        wait_for("rank 0's output", WAIT, || {
            self.output().lines().count() >= n
        });
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(cairn())
            .args([
                "command",
                "--coord-host",
                &self.nodes.host_addr().to_string(),
            ])
            .args(["--coord-port", &self.port.to_string()])
            .args(args)
            .env("CAIRN_COORD_SECRET_FILE", self.secret())
            .env_remove("CAIRN_COORD_SECRET")
            .output()
            .unwrap()
    }

    /// `cairn command --bcheckpoint`; the committed generation.
    fn bcheckpoint(&self) -> u64 {
        let out = self.command(&["--bcheckpoint"]);
        assert!(
            out.status.success(),
            "{}\n{}",
            text(&out.stderr),
            self.logs()
        );
        text(&out.stdout).trim().parse().unwrap()
    }

    /// kill -9 of every agent and every process below it.
    fn kill_all(&mut self) {
        for a in &mut self.agents {
            let pid = a.id() as i32;
            for p in descendants(pid) {
                // SAFETY: kill(2) with a pid and a signal number.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            let _ = a.kill();
            let _ = a.wait();
        }
        self.agents.clear();
    }

    /// Waits for every agent to exit 0 (a restart that hangs fails the test).
    fn wait_all(&mut self) {
        let deadline = std::time::Instant::now() + WAIT;
        while let Some(i) = self
            .agents
            .iter_mut()
            .position(|a| a.try_wait().unwrap().is_none())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "agent {i} still runs after {} s:\n{}",
                WAIT.as_secs(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for mut a in std::mem::take(&mut self.agents) {
            let status = a.wait().unwrap();
            assert!(status.success(), "an agent failed:\n{}", self.logs());
        }
    }

    fn committed(&self) -> Vec<u64> {
        generations_json(&self.scratch.store(), JOB)
            .iter()
            .filter_map(|g| g["id"].as_u64())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        // SAFETY: kill(2) with a pid and a signal number (the coordinator this test started).
        unsafe { libc::kill(self.coordinator as i32, libc::SIGTERM) };
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the job under cairn, checkpointed three times through the coordinator while the
/// ranks exchange data across the nodes, then kills everything; the last generation.
fn three_checkpoints(c: &mut Cluster) -> u64 {
    c.launch();
    let mut last = 0;
    for k in 1..=3 {
        c.wait_lines(20 + 40 * k);
        last = c.bcheckpoint();
    }
    c.kill_all();
    last
}

fn frozen(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('t')))
        .unwrap_or(false)
}

#[test]
fn a_ring_across_two_nodes_checkpointed_three_times_restarts_on_the_same_nodes_with_the_native_output(
) {
    let _area = Area::enter(module_path!());
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let mut c = Cluster::new();
    let native = c.native();
    let g = three_checkpoints(&mut c);
    c.restart(g, 0, 1, &[]);
    c.wait_all();
    assert_eq!(c.output(), native, "{}", c.logs());
}

#[test]
fn a_ring_across_two_nodes_restarts_on_two_other_nodes_that_take_its_addresses_along() {
    let _area = Area::enter(module_path!());
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let mut c = Cluster::new();
    let native = c.native();
    let g = three_checkpoints(&mut c);
    // The old nodes are gone: their addresses are free again.
    for n in 0..2 {
        let addr = format!("{}/24", c.nodes.addr(n));
        let name = c.nodes.name(n).to_string();
        let dev = format!("cbr{}n{n}", c.nodes.addr(0).octets()[2]);
        let ok = Command::new("ip")
            .args(["-n", &name, "addr", "del", &addr, "dev", &dev])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    c.restart(g, 2, 3, &["--adopt-addresses"]);
    c.wait_all();
    assert_eq!(c.output(), native, "{}", c.logs());
}

#[test]
fn an_agent_killed_during_a_checkpoint_leaves_the_previous_generation_and_the_other_node_running() {
    let _area = Area::enter(module_path!());
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let mut c = Cluster::new();
    let native = c.native();
    c.launch();
    c.wait_lines(30);
    let good = c.bcheckpoint();
    // Agent b (node 1) stops answering, agent a freezes and waits for it in the barrier.
    let b = c.agents[0].id() as i32;
    let a = c.agents[1].id() as i32;
    // SAFETY: kill(2) with a pid and a signal number.
    unsafe { libc::kill(b, libc::SIGSTOP) };
    let mut pending = Command::new(cairn())
        .args(["command", "--coord-host", &c.nodes.host_addr().to_string()])
        .args(["--coord-port", &c.port.to_string(), "--bcheckpoint"])
        .env("CAIRN_COORD_SECRET_FILE", c.secret())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ranks_a: Vec<i32> = descendants(a)
        .into_iter()
        .filter(|&p| comm(p) == "tcp_ring")
        .collect();
    assert_eq!(ranks_a.len(), 2);
    wait_for("node 0's ranks frozen", WAIT, || {
        ranks_a.iter().all(|&p| frozen(p))
    });
    // SAFETY: kill(2) with a pid and a signal number.
    unsafe { libc::kill(b, libc::SIGKILL) };
    let status = pending.wait().unwrap();
    assert_eq!(status.code(), Some(4), "the checkpoint must fail");
    // The survivors run again, and the store still ends with the good generation.
    wait_for("node 0's ranks running again", WAIT, || {
        ranks_a.iter().all(|&p| !frozen(p))
    });
    assert_eq!(c.committed().last(), Some(&good));
    c.kill_all();
    // That generation is whole: the job restarted from it ends as the native run.
    c.restart(good, 0, 1, &[]);
    c.wait_all();
    assert_eq!(c.output(), native, "{}", c.logs());
}
