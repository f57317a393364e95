//! A program to run natively or under cairn, and what a run of it produced.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use crate::programs::{compile_c, compile_go, compile_java, programs_dir};
use crate::users::as_user;

/// A program to run: its argv, and the files it writes (relative to its working directory)
/// that the differential comparison must include besides stdout.
#[derive(Clone, Debug)]
pub struct Program {
    /// argv[0] and the arguments.
    pub argv: Vec<OsString>,
    /// Output files written by the program, relative to its working directory.
    pub files: Vec<String>,
    /// A shell prefix run before exec (e.g. `ulimit -s unlimited`), or empty.
    pub shell_prefix: String,
    /// Run as this user (via `setpriv`), or as the test's own user.
    pub user: Option<String>,
}

impl Program {
    /// A C program from tests/programs, compiled on first use.
    pub fn c(name: &str, args: &[&str]) -> Self {
        let mut argv = vec![compile_c(name).into_os_string()];
        argv.extend(args.iter().map(OsString::from));
        Program {
            argv,
            files: Vec::new(),
            shell_prefix: String::new(),
            user: None,
        }
    }

    /// A Go program from tests/programs (NAME.go), built with `go build` on first use.
    pub fn go(name: &str, args: &[&str]) -> Self {
        Self::with_argv(vec![compile_go(name).into_os_string()], args)
    }

    /// A Java program from tests/programs (CLASS.java), compiled with `javac` on first use
    /// and run by `java` with `jvm_args` before the class name.
    pub fn java(class: &str, jvm_args: &[&str], args: &[&str]) -> Self {
        let mut argv = vec![OsString::from("java")];
        argv.extend(jvm_args.iter().map(OsString::from));
        argv.push(OsString::from("-cp"));
        argv.push(compile_java(class).into_os_string());
        argv.push(OsString::from(class));
        Self::with_argv(argv, args)
    }

    /// A program run with `argv` followed by `args`.
    fn with_argv(mut argv: Vec<OsString>, args: &[&str]) -> Self {
        argv.extend(args.iter().map(OsString::from));
        Program {
            argv,
            files: Vec::new(),
            shell_prefix: String::new(),
            user: None,
        }
    }

    /// A script from tests/programs run by `interpreter`.
    pub fn script(interpreter: &str, name: &str, args: &[&str]) -> Self {
        let mut argv = vec![
            OsString::from(interpreter),
            programs_dir().join(name).into_os_string(),
        ];
        argv.extend(args.iter().map(OsString::from));
        Program {
            argv,
            files: Vec::new(),
            shell_prefix: String::new(),
            user: None,
        }
    }

    /// Adds output files to compare.
    pub fn with_files(mut self, files: &[&str]) -> Self {
        self.files.extend(files.iter().map(|s| s.to_string()));
        self
    }

    /// Runs the program (native or under cairn) after this shell snippet, e.g. a ulimit.
    pub fn with_shell_prefix(mut self, prefix: &str) -> Self {
        self.shell_prefix = prefix.to_string();
        self
    }

    /// Runs everything (native run, cairn launch and restart) as `user`.
    pub fn run_as(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// Wraps a command line with the user switch and shell prefix of this program.
    pub(crate) fn wrap(&self, argv: Vec<OsString>) -> Command {
        let mut full = as_user(self.user.as_deref());
        if !self.shell_prefix.is_empty() {
            full.extend(["sh", "-c"].map(OsString::from));
            full.push(OsString::from(format!(
                "{}; exec \"$@\"",
                self.shell_prefix
            )));
            full.push(OsString::from("sh"));
        }
        full.extend(argv);
        let mut cmd = Command::new(&full[0]);
        cmd.args(&full[1..]);
        cmd
    }
}

/// What a run produced: exit status, stdout, and the program's own files.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code (128+N for signal N).
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// The contents of the program's own output files.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The exit code of `status`, 128+N for death by signal N.
pub(crate) fn code_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The outcome of a run of `prog` in `dir` that ended with `status`.
pub(crate) fn collect(prog: &Program, dir: &Path, status: ExitStatus) -> Outcome {
    let stdout = fs::read(dir.join("stdout")).unwrap_or_default();
    let files = prog
        .files
        .iter()
        .map(|f| (f.clone(), fs::read(dir.join(f)).unwrap_or_default()))
        .collect();
    Outcome {
        code: code_of(status),
        stdout,
        files,
    }
}

/// Runs the program natively to completion in `dir`, stdout into `dir/stdout`: until every
/// process of the run has ended (at most two minutes after the launched one).
pub fn run_native(prog: &Program, dir: &Path) -> Outcome {
    let stdout = File::create(dir.join("stdout")).expect("creating stdout file");
    let status = prog
        .wrap(prog.argv.clone())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .status()
        .expect("running the program natively");
    // As under cairn, the run lasts until its last process has ended (daemons, background
    // processes): until no process holds its stdout open.
    wait_unheld(&dir.join("stdout"));
    collect(prog, dir, status)
}

/// Waits (at most two minutes) until no process holds `file` open.
fn wait_unheld(file: &Path) {
    let file = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let held = || {
        fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|p| {
                fs::read_dir(p.path().join("fd"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l == file))
            })
    };
    let start = std::time::Instant::now();
    while held() && start.elapsed() < std::time::Duration::from_secs(120) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
