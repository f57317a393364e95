//! A store on a network file system shared by several nodes, as on a cluster's scratch: here
//! an sshfs (FUSE) export of a directory served by an OpenSSH server on 127.0.0.1, mounted
//! three times — one mount per "node", each with its own client cache. Two jobs checkpoint
//! into the store every second through their own mounts while a third node prunes and
//! collects garbage in a loop; jobs and maintenance are killed with -9 at random moments and
//! restarted. In the end every job's output equals its native output and the store verifies.
//! (docs/store-format.md, "File systems", says which operations the store relies on.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_testkit::{cairn, is_root, run_native, Area, Job, Program, Rng, Scratch, COMMITTED};

/// An OpenSSH server on 127.0.0.1 serving SFTP, and the sshfs mounts of its export.
struct SshfsServer {
    dir: PathBuf,
    sshd: Child,
    port: u16,
    mounts: Vec<PathBuf>,
}

impl SshfsServer {
    fn start(dir: &Path) -> SshfsServer {
        let keygen = |name: &str| {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(name))
                .status()
                .expect("ssh-keygen (scripts/setup.sh installs openssh-server)");
            assert!(st.success());
        };
        keygen("hostkey");
        keygen("id");
        let port = free_port();
        std::fs::create_dir_all(dir.join("export")).expect("export directory");
        std::fs::write(
            dir.join("authorized_keys"),
            std::fs::read(dir.join("id.pub")).expect("public key"),
        )
        .expect("authorized_keys");
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nAuthorizedKeysFile {}\nStrictModes no\n\
             Subsystem sftp internal-sftp\nPidFile {}\n",
            dir.join("hostkey").display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        );
        std::fs::write(dir.join("sshd_config"), config).expect("sshd_config");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sshd (scripts/setup.sh installs openssh-server)");
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "sshd did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        SshfsServer {
            dir: dir.to_path_buf(),
            sshd,
            port,
            mounts: Vec::new(),
        }
    }

    /// Mounts the export at a new directory named `node`; returns the mount point.
    fn mount(&mut self, node: &str) -> PathBuf {
        let at = self.dir.join(node);
        std::fs::create_dir_all(&at).expect("mount point");
        let st = Command::new("sshfs")
            .arg(format!(
                "root@127.0.0.1:{}",
                self.dir.join("export").display()
            ))
            .arg(&at)
            .arg("-o")
            .arg(format!(
                "IdentityFile={},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,port={}",
                self.dir.join("id").display(),
                self.port
            ))
            .status()
            .expect("sshfs (scripts/setup.sh installs it)");
        assert!(st.success(), "sshfs mount failed");
        self.mounts.push(at.clone());
        at
    }
}

impl Drop for SshfsServer {
    fn drop(&mut self) {
        for m in &self.mounts {
            let _ = Command::new("fusermount").arg("-uz").arg(m).status();
        }
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs `cairn ARGS --store STORE`, killing it with -9 after `kill_after` when given.
fn maintenance(store: &Path, args: &[&str], kill_after: Option<Duration>) {
    let mut child = Command::new(cairn())
        .args(args)
        .arg("--store")
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting cairn maintenance");
    if let Some(after) = kill_after {
        std::thread::sleep(after);
        let _ = child.kill();
    }
    let _ = child.wait();
}

#[test]
fn two_nodes_checkpoint_into_one_sshfs_store_while_a_third_prunes_and_collects() {
    if !is_root() {
        eprintln!("needs root for sshd and FUSE mounts; runs in CI as root");
        return;
    }
    let _area = Area::enter(module_path!());
    let scratch = Scratch::new();
    let mut server = SshfsServer::start(&scratch.sub("ssh"));
    let nodes = [server.mount("node-a"), server.mount("node-b")];
    let collector = server.mount("node-c");
    let prog = Program::c("counter", &["250", "out.txt", "20000"]).with_files(&["out.txt"]);
    let native = run_native(&prog, &scratch.sub("native"));
    assert_eq!(native.code, 0);
    let mut rng = Rng::new("shared_store");
    let launch_args = ["--interval", "1"];
    let dirs: Vec<PathBuf> = (0..2).map(|i| scratch.sub(&format!("job{i}"))).collect();
    let stores: Vec<PathBuf> = nodes.iter().map(|n| n.join("store")).collect();
    let names = ["job-a", "job-b"];
    let mut jobs: Vec<Option<Job>> = (0..2)
        .map(|i| {
            Some(Job::start(
                &prog,
                "launch",
                &stores[i],
                names[i],
                &launch_args,
                &dirs[i],
                true,
            ))
        })
        .collect();
    let stop = AtomicBool::new(false);
    /// Stops the collector when the test ends, also when it fails half-way.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop_collector = StopOnDrop(&stop);
        // The third node: prune and gc in a loop, sometimes killed with -9 half-way.
        let collector_store = collector.join("store");
        let stop = &stop;
        s.spawn(move || {
            let mut rng = Rng::new("shared_store collector");
            while !stop.load(Ordering::Relaxed) {
                if collector_store.join("config.json").exists() {
                    let kill = (rng.range(0, 2) == 0).then(|| rng.millis(10, 400));
                    maintenance(&collector_store, &["prune", "--keep-last", "2"], kill);
                    let kill = (rng.range(0, 2) == 0).then(|| rng.millis(10, 400));
                    maintenance(&collector_store, &["gc", "--grace", "1s"], kill);
                }
                std::thread::sleep(rng.millis(100, 400));
            }
        });
        for cycle in 0..3 {
            for i in 0..2 {
                let job = jobs[i].as_mut().expect("a running job");
                let committed = job.wait_for_lines(COMMITTED, 1, Duration::from_secs(120));
                assert!(
                    committed,
                    "cycle {cycle}: {} committed nothing:\n{}",
                    names[i],
                    job.log_text()
                );
                std::thread::sleep(rng.millis(0, 1500));
                if let Some(j) = jobs[i].take() {
                    j.kill_all();
                }
                jobs[i] = Some(Job::start(
                    &prog,
                    "restart",
                    &stores[i],
                    names[i],
                    &launch_args,
                    &dirs[i],
                    false,
                ));
            }
        }
        for (i, slot) in jobs.iter_mut().enumerate() {
            if let Some(j) = slot.take() {
                let log = j.log.clone();
                let code = j.wait(Duration::from_secs(180));
                assert_eq!(
                    code,
                    0,
                    "{}: {}",
                    names[i],
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    for (i, dir) in dirs.iter().enumerate() {
        let stdout = std::fs::read(dir.join("stdout")).expect("job stdout");
        assert!(
            stdout == native.stdout,
            "{}: stdout differs from the native run",
            names[i]
        );
        let file = std::fs::read(dir.join("out.txt")).expect("job file");
        assert!(
            Some(&file) == native.files.get("out.txt"),
            "{}: out.txt differs from the native run",
            names[i]
        );
    }
    let verify = Command::new(cairn())
        .args(["verify", "--read-data", "--json", "--store"])
        .arg(collector.join("store"))
        .output()
        .expect("cairn verify");
    let report: serde_json::Value =
        serde_json::from_slice(&verify.stdout).expect("verify --json output");
    assert_eq!(report["ok"], true, "{report}");
    drop(server);
}
