//! MPI jobs on one node under cairn: the launcher (`mpiexec`), its daemons and every rank
//! are one job, checkpointed by signal or interval, killed with kill -9 and restarted; the
//! output equals a native run's byte for byte. Open MPI over shared memory (over TCP: a
//! known gap, see docs/mpi.md), MPICH's default transports; LAMMPS from Debian on one and
//! on two ranks (see docs/mpi.md).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cairn_testkit::{self as common, differential, programs_dir, Area, Cycles, Program};

/// A directory (one per test process) for the MPI programs, compiled on first use.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("creating a temporary directory"))
        .path()
}

/// tests/programs/NAME.c compiled with `mpicc.MPI` (`openmpi` or `mpich`), once.
fn mpi_binary(name: &str, mpi: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = bin_dir().join(format!("{name}.{mpi}"));
    if !out.exists() {
        let status = Command::new(format!("mpicc.{mpi}"))
            .args(["-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(programs_dir().join(format!("{name}.c")))
            .status()
            .unwrap_or_else(|e| panic!("running mpicc.{mpi} (scripts/setup.sh installs it): {e}"));
        assert!(status.success(), "mpicc.{mpi} failed for {name}");
    }
    common::open_up(bin_dir());
    common::open_up(&out);
    out
}

/// `argv` as a program to run.
fn program(argv: Vec<OsString>) -> Program {
    Program {
        argv,
        files: Vec::new(),
        shell_prefix: String::new(),
        user: None,
    }
}

/// `mpiexec.mpich -n RANKS NAME ARGS...`.
fn mpich(name: &str, ranks: u32, args: &[&str]) -> Program {
    let mut argv: Vec<OsString> = vec![
        "mpiexec.mpich".into(),
        "-n".into(),
        ranks.to_string().into(),
    ];
    argv.push(mpi_binary(name, "mpich").into_os_string());
    argv.extend(args.iter().map(OsString::from));
    program(argv)
}

/// Three cycles at random moments of a job that checkpoints in about a second.
fn cycles() -> Cycles {
    Cycles {
        before_checkpoint_ms: (300, 1200),
        ..Cycles::default()
    }
}

#[test]
fn mpich_ring_of_four_ranks_survives_three_kill_restart_cycles() {
    let _area = Area::enter(module_path!());
    let out = differential(&mpich("mpi_ring", 4, &["500"]), "mpich-ring", &cycles());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("done\n"));
}

#[test]
fn mpich_jacobi_survives_three_cycles_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    let prog = mpich("mpi_jacobi", 4, &["500"]).run_as(common::TEST_USER);
    let out = differential(&prog, "mpich-jacobi-user", &cycles());
    assert!(String::from_utf8_lossy(&out.stdout).contains("final moment"));
}

#[test]
fn mpich_jacobi_survives_periodic_checkpoints() {
    let _area = Area::enter(module_path!());
    let c = Cycles {
        use_interval: true,
        launch_args: vec!["--interval".into(), "1".into()],
        ..cycles()
    };
    differential(
        &mpich("mpi_jacobi", 2, &["500"]),
        "mpich-jacobi-interval",
        &c,
    );
}

/// LAMMPS (Debian's `lmp`, an Open MPI program run as one process without a launcher):
/// the thermodynamic output it prints every 50 steps (a file, `fix print`) is the native
/// run's after three cycles.
#[test]
fn lammps_as_one_process_keeps_its_thermo_output() {
    let _area = Area::enter(module_path!());
    let input = programs_dir().join("lammps_lj.in");
    // A line on stdout first: the harness checkpoints once the program has printed.
    let script = format!(
        "echo lammps; exec lmp -log none -screen none -in '{}'",
        input.display()
    );
    let prog = program(vec!["sh".into(), "-c".into(), script.into()]).with_files(&["thermo.txt"]);
    let out = differential(&prog, "lammps-one", &cycles());
    let thermo = String::from_utf8_lossy(&out.files["thermo.txt"]).into_owned();
    assert!(thermo.lines().count() > 50, "{thermo}");
}

/// `mpirun.openmpi -np RANKS --mca btl BTL ARGS...` (ARGS: the program and its arguments),
/// with a session directory and shared-memory segments of its own in `tmp` (see docs/mpi.md:
/// under cairn every job's mpirun is pid 2 of its namespace, and Open MPI names both after
/// that pid, so two jobs at once on one node must be told apart).
fn open_mpi(tmp: &Path, ranks: u32, btl: &str, args: Vec<OsString>) -> Program {
    let mut argv: Vec<OsString> = [
        "mpirun.openmpi",
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
    ]
    .map(OsString::from)
    .to_vec();
    argv.push(ranks.to_string().into());
    argv.extend(["--mca", "btl", btl].map(OsString::from));
    argv.extend(args);
    program(argv).with_shell_prefix(&session_env(tmp))
}

/// Held by each Open MPI test: their restarts need the pseudo-terminal numbers and TCP
/// ports their jobs had, which another Open MPI job running at the same time may take.
static OPEN_MPI: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The environment giving an Open MPI job its own session directory and segments in `tmp`.
fn session_env(tmp: &Path) -> String {
    common::open_up(tmp);
    format!(
        "export OMPI_MCA_orte_tmpdir_base='{0}' OMPI_MCA_btl_vader_backing_directory='{0}'",
        tmp.display()
    )
}

/// Open MPI over shared memory (`vader`, with CMA between the ranks): mpirun, its ranks'
/// pseudo-terminals, the shared-memory segments in /dev/shm and the PMIx sockets of its
/// session directory are one job.
#[test]
fn open_mpi_ring_over_shared_memory_survives_three_kill_restart_cycles() {
    let _area = Area::enter(module_path!());
    let _one = OPEN_MPI.lock().unwrap_or_else(|e| e.into_inner());
    let ring = mpi_binary("mpi_ring", "openmpi");
    let tmp = tempfile::tempdir().unwrap();
    let prog = open_mpi(tmp.path(), 4, "self,vader", vec![ring.into(), "500".into()]);
    let out = differential(&prog, "ompi-ring-vader", &cycles());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("done\n"));
}

#[test]
fn open_mpi_ring_survives_three_cycles_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    let _one = OPEN_MPI.lock().unwrap_or_else(|e| e.into_inner());
    let ring = mpi_binary("mpi_ring", "openmpi");
    let tmp = tempfile::tempdir().unwrap();
    let prog = open_mpi(tmp.path(), 2, "self,vader", vec![ring.into(), "500".into()])
        .run_as(common::TEST_USER);
    let out = differential(&prog, "ompi-ring-user", &cycles());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("done\n"));
}

/// LAMMPS on two Open MPI ranks: the thermodynamic output (a file, `fix print`) and the
/// screen output without its timings are the native run's after three cycles.
#[test]
fn lammps_on_two_ranks_keeps_its_thermo_output() {
    let _area = Area::enter(module_path!());
    let _one = OPEN_MPI.lock().unwrap_or_else(|e| e.into_inner());
    let input = programs_dir().join("lammps_lj.in");
    let args = ["lmp", "-log", "none", "-screen", "none", "-in"]
        .map(OsString::from)
        .into_iter()
        .chain([input.into_os_string()])
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let prog = open_mpi(tmp.path(), 2, "self,vader", args);
    // The harness checkpoints once the job has printed: mpirun prints nothing here.
    let script = prog
        .argv
        .iter()
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let prog = program(vec![
        "sh".into(),
        "-c".into(),
        format!("echo lammps; exec {script}").into(),
    ])
    .with_files(&["thermo.txt"]);
    let out = differential(&prog, "lammps-two", &cycles());
    let thermo = String::from_utf8_lossy(&out.files["thermo.txt"]).into_owned();
    assert!(thermo.lines().count() > 50, "{thermo}");
}

/// Checkpoints by the coordinator: `cairn command --bcheckpoint` commits one generation of
/// the whole MPI job, `cairn command --kill` ends it, `cairn restart` under the coordinator
/// resumes it; three cycles, then the output is the native run's.
#[test]
fn mpich_ring_checkpointed_by_the_coordinator_survives_three_cycles() {
    let _area = Area::enter(module_path!());
    use cairn_testkit::{cairn, run_native, Job, Scratch, RUNNING};
    use std::time::Duration;
    let wait = Duration::from_secs(120);
    let prog = mpich("mpi_ring", 4, &["600"]);
    let scratch = Scratch::new();
    let native = run_native(&prog, &scratch.sub("native"));
    assert_eq!(native.code, 0, "{native:?}");
    let secrets = scratch.sub("secrets");
    let prog = prog.with_shell_prefix(&format!(
        "export CAIRN_SECRET_DIR='{}'; unset CAIRN_COORD_HOST CAIRN_COORD_PORT",
        secrets.display()
    ));
    let cli = |args: &[&str]| {
        let out = Command::new(cairn())
            .env("CAIRN_SECRET_DIR", &secrets)
            .env_remove("CAIRN_COORD_HOST")
            .env_remove("CAIRN_COORD_PORT")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cairn {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let port_file = scratch.path("port");
    let store = scratch.store();
    cli(&[
        "coordinator",
        "--daemon",
        "--port",
        "0",
        "--port-file",
        port_file.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    let port = std::fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .to_string();
    let dir = scratch.sub("cairn");
    let extra = ["--coord-port", port.as_str()];
    let mut job = Job::start(&prog, "launch", &store, "coord-ring", &extra, &dir, true);
    for cycle in 0..3 {
        assert!(job.wait_for_lines(RUNNING, 1, wait), "{}", job.log_text());
        job.wait_stdout(&format!("lap {} ", 50 + 120 * cycle));
        cli(&["command", "--coord-port", &port, "--bcheckpoint"]);
        cli(&["command", "--coord-port", &port, "--kill"]);
        let log = job.log_text();
        let code = job.wait(wait);
        assert_eq!(code, 137, "{log}");
        job = Job::start(&prog, "restart", &store, "coord-ring", &extra, &dir, false);
    }
    let log = job.log.clone();
    let code = job.wait(wait);
    cli(&["command", "--coord-port", &port, "--quit"]);
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let got = std::fs::read(dir.join("stdout")).unwrap();
    assert!(got == native.stdout, "{}", String::from_utf8_lossy(&got));
}
