//! MPI jobs on one node under cairn: the launcher (`mpiexec`), its daemons and every rank
//! are one job, checkpointed by signal or interval, killed with kill -9 and restarted; the
//! output equals a native run's byte for byte. MPICH's default transports (shared memory
//! between the ranks, the launcher's sockets); LAMMPS from Debian as one process; Open MPI's
//! `mpirun`, refused by name because its daemon puts every rank's stdout on a
//! pseudo-terminal it opens itself (see docs/mpi.md).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use cairn_testkit::{
    self as common, differential, programs_dir, run_native, Area, Cycles, Job, Program, Scratch,
};

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
    let mut p = Program::c("sleeper", &[]);
    p.argv = argv;
    p
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

/// Open MPI's `mpirun` gives every rank a pseudo-terminal as its stdout (not configurable
/// in Open MPI 4.1): the checkpoint is refused naming the process and the pseudo-terminal,
/// and the job runs on to the same output as natively.
#[test]
fn open_mpi_ranks_on_a_pseudo_terminal_are_refused_by_name_and_run_on() {
    let _area = Area::enter(module_path!());
    let mut argv: Vec<OsString> = [
        "mpirun.openmpi",
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        "2",
        "--mca",
        "btl",
        "self,vader",
    ]
    .map(OsString::from)
    .to_vec();
    argv.push(mpi_binary("mpi_ring", "openmpi").into_os_string());
    argv.push("300".into());
    let prog = program(argv);
    let scratch = Scratch::new();
    let native = run_native(&prog, &scratch.sub("native"));
    assert_eq!(native.code, 0, "{native:?}");
    let dir = scratch.sub("cairn");
    let mut job = Job::start(&prog, "launch", &scratch.store(), "ompi", &[], &dir, true);
    job.wait_stdout("lap 10 ");
    job.signal(libc::SIGUSR1);
    assert!(
        job.wait_for_lines("checkpoint failed", 1, Duration::from_secs(120)),
        "{}",
        job.log_text()
    );
    let log = job.log_text();
    assert!(
        log.contains("/dev/ptmx (a pseudo-terminal the job opened itself"),
        "{log}"
    );
    let log = job.log_text();
    assert_eq!(job.wait(Duration::from_secs(120)), 0, "{log}");
    let stdout = std::fs::read(dir.join("stdout")).unwrap();
    assert_eq!(stdout, native.stdout);
}
