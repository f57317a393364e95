//! The conformance suite: every program of tests/conformance (one kind of kernel state each)
//! run natively and under cairn through checkpoint → kill -9 → restart twice, as root and as
//! the unprivileged test user, must pass its own checks after every restart with the same
//! output as natively — or, where its header says so, be refused with the documented message
//! while it runs on unharmed. docs/compatibility.md is generated from the programs' headers
//! and checked here to be current, so the table says exactly what the suite proves.
//!
//! `CAIRN_CONFORMANCE=NAME,NAME` runs only those programs; `CAIRN_BLESS=1` rewrites the
//! table instead of failing when it is out of date.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_testkit::{
    as_user, comm, count_lines, descendants, is_root, open_up, Area, Job, Program, Scratch,
    COMMITTED, RUNNING, TEST_USER,
};

/// The agent's log line when a checkpoint fails (the job runs on).
const CHECKPOINT_FAILED: &str = "checkpoint failed";
/// How many checks each program makes (CF_CHECKS in conformance.h).
const CHECKS: usize = 2;
/// Programs run at the same time.
const WORKERS: usize = 3;
/// The longest a program may take to reach its next line.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// What cairn does with a program's state, as its header says.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    /// Checkpointed and restored exactly.
    Restored,
    /// The checkpoint fails with a message containing this text; the program runs on.
    Refused(String),
    /// Not run: the state cannot be created in this mode (the reason).
    Skip(String),
}

impl Expect {
    fn parse(text: &str) -> Result<Expect, String> {
        let text = text.trim();
        if text == "restored" {
            Ok(Expect::Restored)
        } else if let Some(msg) = text.strip_prefix("refused:") {
            Ok(Expect::Refused(msg.trim().to_string()))
        } else if let Some(why) = text.strip_prefix("skip:") {
            Ok(Expect::Skip(why.trim().to_string()))
        } else {
            Err(format!(
                "expected `restored`, `refused: TEXT` or `skip: REASON`, found {text:?}"
            ))
        }
    }

    /// The table cell.
    fn cell(&self) -> String {
        match self {
            Expect::Restored => "restored exactly".to_string(),
            Expect::Refused(m) => format!("refused: “{}”", m.replace('|', "\\|")),
            Expect::Skip(why) => format!("not applicable: {}", why.replace('|', "\\|")),
        }
    }
}

/// One program of the suite and what its header says.
#[derive(Clone, Debug)]
struct Spec {
    name: String,
    source: PathBuf,
    kind: String,
    checks: String,
    root: Expect,
    user: Expect,
    build: Vec<String>,
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// Reads the header comment of `source`.
fn parse_spec(source: &Path) -> Result<Spec, String> {
    let name = source
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("a file name that is not UTF-8")?
        .to_string();
    if name.len() > 15 {
        return Err(format!(
            "{name}: names are at most 15 characters (the runner finds the process by name)"
        ));
    }
    let text = fs::read_to_string(source).map_err(|e| format!("{name}: {e}"))?;
    let body = text
        .trim_start()
        .strip_prefix("/*")
        .and_then(|t| t.split_once("*/"))
        .map(|(c, _)| c)
        .ok_or_else(|| format!("{name}: no header comment at the top"))?;
    let mut fields = std::collections::BTreeMap::new();
    for line in body.lines() {
        let line = line.trim().trim_start_matches('*').trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((key, value))
                if ["kind", "checks", "root", "user", "build"].contains(&key.trim()) =>
            {
                fields.insert(key.trim().to_string(), value.trim().to_string());
            }
            _ => {}
        }
    }
    let field = |k: &str| {
        fields
            .get(k)
            .cloned()
            .ok_or_else(|| format!("{name}: the header has no `{k}:` line"))
    };
    let root = Expect::parse(&field("root")?).map_err(|e| format!("{name}: root: {e}"))?;
    let user = match fields.get("user") {
        Some(u) => Expect::parse(u).map_err(|e| format!("{name}: user: {e}"))?,
        None => root.clone(),
    };
    Ok(Spec {
        kind: field("kind")?,
        checks: field("checks")?,
        root,
        user,
        build: fields
            .get("build")
            .map(|b| b.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        source: source.to_path_buf(),
        name,
    })
}

/// Every program of the suite, sorted by name.
fn all_specs() -> Vec<Spec> {
    let mut sources: Vec<PathBuf> = fs::read_dir(suite_dir())
        .expect("reading tests/conformance")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    let (specs, errors): (Vec<_>, Vec<_>) = sources
        .iter()
        .map(|s| parse_spec(s))
        .partition(Result::is_ok);
    let errors: Vec<String> = errors.into_iter().filter_map(Result::err).collect();
    assert!(
        errors.is_empty(),
        "bad conformance headers:\n{}",
        errors.join("\n")
    );
    specs.into_iter().filter_map(Result::ok).collect()
}

/// Compiles `spec` into `bin_dir` and returns the binary.
fn compile(spec: &Spec, bin_dir: &Path) -> Result<PathBuf, String> {
    let bin = bin_dir.join(&spec.name);
    let out = Command::new("cc")
        .args(["-O2", "-pthread", "-Wall", "-Werror", "-I"])
        .arg(suite_dir())
        .arg("-o")
        .arg(&bin)
        .arg(&spec.source)
        .args(&spec.build)
        .output()
        .map_err(|e| format!("running cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "does not compile:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

/// Waits until a line of `dir/stdout` starts with `prefix`; `alive` says whether the program
/// may still write it.
fn wait_line(dir: &Path, prefix: &str, mut alive: impl FnMut() -> bool) -> Result<(), String> {
    let end = Instant::now() + STEP_TIMEOUT;
    loop {
        let text = fs::read_to_string(dir.join("stdout")).unwrap_or_default();
        if text.lines().any(|l| l.starts_with(prefix)) {
            return Ok(());
        }
        if text.lines().any(|l| l.starts_with("SETUP FAILED")) {
            return Err(format!("the program could not set up its state:\n{text}"));
        }
        if !alive() || Instant::now() > end {
            return Err(format!("no line {prefix:?} on stdout; stdout:\n{text}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends SIGUSR2 to `pid`.
fn usr2(pid: i32) {
    // SAFETY: kill(2) with a pid found among our own job's processes and a valid signal.
    unsafe { libc::kill(pid, libc::SIGUSR2) };
}

/// Runs the program natively, checks twice, returns its stdout.
fn run_native(bin: &Path, user: Option<&str>) -> Result<String, String> {
    let scratch = Scratch::new();
    let dir = scratch.sub("native");
    if user.is_some() {
        open_up(&dir);
    }
    let stdout = fs::File::create(dir.join("stdout")).map_err(|e| e.to_string())?;
    let argv = as_user(user);
    let mut cmd = match argv.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = cmd
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the program: {e}"))?;
    let pid = child.id() as i32;
    let result = (|| {
        wait_line(&dir, "READY", || matches!(child.try_wait(), Ok(None)))?;
        for n in 1..=CHECKS {
            usr2(pid);
            wait_line(&dir, &format!("CHECK {n} "), || {
                matches!(child.try_wait(), Ok(None))
            })?;
        }
        let end = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return match st.code() {
                    Some(0) => Ok(()),
                    _ => Err(format!("it ended with {st}")),
                };
            }
            if Instant::now() > end {
                return Err("it did not exit after its last check".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })();
    let _ = child.kill();
    let _ = child.wait();
    let out = fs::read_to_string(dir.join("stdout")).unwrap_or_default();
    result.map_err(|e| format!("natively: {e}\nstdout:\n{out}"))?;
    Ok(out)
}

/// The program's first process in the job (its nearest process with the program's name).
fn program_pid(job: &Job, name: &str) -> Result<i32, String> {
    let short: String = name.chars().take(15).collect();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = descendants(job.pid())
            .into_iter()
            .find(|&p| comm(p) == short)
        {
            return Ok(pid);
        }
        if Instant::now() > end {
            return Err(format!("no process named {short} in the job"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends the program its SIGUSR2 and waits for the verdict of check `n`.
fn check_once(job: &mut Job, dir: &Path, name: &str, n: usize) -> Result<(), String> {
    usr2(program_pid(job, name)?);
    wait_line(dir, &format!("CHECK {n} "), || job.running())
}

/// Runs the program under cairn as `expect` says, returns its stdout.
fn run_under_cairn(
    spec: &Spec,
    bin: &Path,
    user: Option<&str>,
    expect: &Expect,
) -> Result<String, String> {
    let scratch = Scratch::new();
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    if user.is_some() {
        open_up(scratch.root());
        open_up(&dir);
    }
    let prog = Program {
        argv: vec![bin.as_os_str().to_owned()],
        files: Vec::new(),
        shell_prefix: String::new(),
        user: user.map(String::from),
    };
    let job_name = format!("{}-{}", spec.name, user.unwrap_or("root"));
    let mut logs = String::new();
    let mut job = Some(Job::start(
        &prog,
        "launch",
        &store,
        &job_name,
        &[],
        &dir,
        true,
    ));
    let result = (|| {
        let running = |j: &mut Option<Job>| j.as_mut().is_some_and(Job::running);
        wait_line(&dir, "READY", || running(&mut job))?;
        // The agent takes SIGUSR1 as a checkpoint request once it says it runs the program.
        let first = job.as_mut().ok_or("no job")?;
        if !first.wait_for_lines(RUNNING, 1, STEP_TIMEOUT) {
            return Err("the agent never said it runs the program".into());
        }
        match expect {
            Expect::Restored => {
                for n in 1..=CHECKS {
                    let old = job.as_mut().ok_or("no job")?;
                    let committed = old.checkpoint();
                    logs.push_str(&old.log_text());
                    if !committed {
                        return Err(format!("checkpoint {n} was not committed"));
                    }
                    if let Some(old) = job.take() {
                        old.kill_all();
                    }
                    let new = job.insert(Job::start(
                        &prog,
                        "restart",
                        &store,
                        &job_name,
                        &[],
                        &dir,
                        false,
                    ));
                    if !new.wait_for_lines(RUNNING, 1, STEP_TIMEOUT) {
                        logs.push_str(&new.log_text());
                        return Err(format!("restart {n} did not bring the program back"));
                    }
                    check_once(new, &dir, &spec.name, n)?;
                }
            }
            Expect::Refused(text) => {
                let j = job.as_mut().ok_or("no job")?;
                j.signal(libc::SIGUSR1);
                let refused = j.wait_for_lines(CHECKPOINT_FAILED, 1, STEP_TIMEOUT);
                let log = j.log_text();
                logs.push_str(&log);
                if count_lines(&j.log, COMMITTED) > 0 {
                    return Err("the checkpoint was committed, but it must be refused".into());
                }
                if !refused {
                    return Err("the checkpoint neither failed nor was committed".into());
                }
                if !log.contains(text.as_str()) {
                    return Err(format!("the refusal does not say {text:?}"));
                }
                for n in 1..=CHECKS {
                    check_once(j, &dir, &spec.name, n)?;
                }
            }
            Expect::Skip(_) => unreachable!("skipped modes are not run"),
        }
        Ok(())
    })();
    let out = fs::read_to_string(dir.join("stdout")).unwrap_or_default();
    let outcome = match (result, job) {
        (Ok(()), Some(j)) => {
            let log = j.log.clone();
            let code = j.wait(STEP_TIMEOUT);
            logs.push_str(&fs::read_to_string(log).unwrap_or_default());
            if code == 0 {
                Ok(fs::read_to_string(dir.join("stdout")).unwrap_or_default())
            } else {
                Err(format!("the job ended with exit code {code}"))
            }
        }
        (Ok(()), None) => Err("no job".to_string()),
        (Err(e), j) => {
            if let Some(j) = j {
                logs.push_str(&j.log_text());
                j.kill_all();
            }
            Err(e)
        }
    };
    outcome.map_err(|e| {
        let files: Vec<String> = fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|f| {
                        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                        format!("{} ({len} bytes)", f.file_name().to_string_lossy())
                    })
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "under cairn: {e}\nstdout:\n{out}\nfiles: {}\ncairn's log:\n{}",
            files.join(", "),
            tail(&logs)
        )
    })
}

/// The last lines of a long log.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs one program in one mode; None when it behaved as its header says.
fn run_one(spec: &Spec, bin: &Path, user: Option<&str>, expect: &Expect) -> Option<String> {
    let run = || -> Result<(), String> {
        let native = run_native(bin, user)?;
        let under = run_under_cairn(spec, bin, user, expect)?;
        if native != under {
            return Err(format!(
                "the output under cairn differs from the native one:\nnative:\n{native}\nunder cairn:\n{under}"
            ));
        }
        Ok(())
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(p) => Some(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the runner panicked".into()),
        ),
    }
}

/// The programs selected by CAIRN_CONFORMANCE (all without it).
fn selected(specs: Vec<Spec>) -> Vec<Spec> {
    match std::env::var("CAIRN_CONFORMANCE") {
        Ok(list) if !list.trim().is_empty() => {
            let names: Vec<&str> = list.split(',').map(str::trim).collect();
            specs
                .into_iter()
                .filter(|s| names.contains(&s.name.as_str()))
                .collect()
        }
        _ => specs,
    }
}

#[test]
fn every_program_is_restored_exactly_or_refused_as_documented() {
    let _area = Area::enter(module_path!());
    let specs = selected(all_specs());
    let bins = tempfile::tempdir().expect("a directory for the programs");
    open_up(bins.path());
    let mut runs: Vec<(Spec, PathBuf, Option<&str>, Expect)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for spec in &specs {
        let bin = match compile(spec, bins.path()) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{}: {e}", spec.name));
                continue;
            }
        };
        let modes: Vec<(Option<&str>, &Expect)> = if is_root() {
            vec![(None, &spec.root), (Some(TEST_USER), &spec.user)]
        } else {
            vec![(None, &spec.user)]
        };
        for (user, expect) in modes {
            if !matches!(expect, Expect::Skip(_)) {
                runs.push((spec.clone(), bin.clone(), user, expect.clone()));
            }
        }
    }
    let queue = Mutex::new(runs.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some((spec, bin, user, expect)) = next else {
                    break;
                };
                let started = Instant::now();
                let verdict = run_one(&spec, &bin, user, &expect);
                eprintln!(
                    "conformance: {} as {}: {} ({:.1} s)",
                    spec.name,
                    user.unwrap_or("root"),
                    if verdict.is_none() {
                        "as documented"
                    } else {
                        "WRONG"
                    },
                    started.elapsed().as_secs_f64()
                );
                if let Some(why) = verdict {
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!(
                            "{} as {}: {why}",
                            spec.name,
                            user.unwrap_or("root")
                        ));
                }
            });
        }
    });
    failures.extend(results.into_inner().unwrap_or_else(|e| e.into_inner()));
    assert!(
        failures.is_empty(),
        "{} of the conformance runs went wrong:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The compatibility table the headers make.
fn compatibility_table(specs: &[Spec]) -> String {
    let mut sorted: Vec<&Spec> = specs.iter().collect();
    sorted.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    let mut out = String::from(
        "# Compatibility: what cairn restores exactly and what it refuses\n\n\
         One row per program of the conformance suite (`tests/conformance`): each sets up one \
         kind of kernel state, is checkpointed, killed with `kill -9` and restarted twice, and \
         checks every attribute listed after each restart; its output must equal its native \
         output. \"Refused\" means the checkpoint fails with a message containing the quoted \
         text while the program runs on unharmed. The suite runs every program as root and as \
         an ordinary user in CI (`cargo test --release --test e2e conformance::`).\n\n\
         This file is generated from the programs' headers and checked by that test; do not \
         edit it by hand: `CAIRN_BLESS=1 cargo test --release --test e2e conformance::` \
         rewrites it.\n\n\
         | kind | attributes checked | as root | as an ordinary user | program |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for s in sorted {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | [{}](../tests/conformance/{}.c) |",
            s.kind.replace('|', "\\|"),
            s.checks.replace('|', "\\|"),
            s.root.cell(),
            s.user.cell(),
            s.name,
            s.name
        );
    }
    let _ = write!(out, "\n{} programs.\n", specs.len());
    out
}

#[test]
fn the_compatibility_table_is_generated_from_the_suite() {
    let specs = all_specs();
    assert!(!specs.is_empty(), "the conformance suite has no programs");
    let table = compatibility_table(&specs);
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/compatibility.md");
    if std::env::var_os("CAIRN_BLESS").is_some() {
        fs::write(&doc, &table).expect("writing docs/compatibility.md");
        return;
    }
    let current = fs::read_to_string(&doc).unwrap_or_default();
    assert!(
        current == table,
        "docs/compatibility.md is out of date with tests/conformance; regenerate it with \
         CAIRN_BLESS=1 cargo test --release --test e2e conformance::"
    );
}
