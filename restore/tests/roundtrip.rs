//! Capture → kill → restore round trips of C programs (as the current user, normally root);
//! the output must equal a native run byte for byte.

mod common;

use cairn_image::MemoryImageStore;
use cairn_sys::{ChildSpec, ExitStatus, Sandbox};
use common::*;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

/// Run tests/progs/<name>.c natively and with `cycles` checkpoint/kill/restore cycles; compare.
fn differential(name: &str, args: &[&str], cycles: usize, delay_ms: u64) {
    let dir = Scratch::new();
    let prog = compile(&dir, name, &[]);
    let native = dir.path("native.txt");
    let st = Command::new(&prog)
        .arg(&native)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "native run of {name} failed: {st}");
    let out = dir.path("out.txt");
    let mut argv = os(&[&prog, &out]);
    argv.extend(args.iter().map(|a| a.into()));
    let st = run_with_cycles(argv, cycles, Duration::from_millis(delay_ms));
    let a = std::fs::read_to_string(&native).unwrap();
    let b = std::fs::read_to_string(&out).unwrap();
    assert_eq!(st, ExitStatus::Code(0), "{name} under cairn; output:\n{b}");
    assert_eq!(a, b, "{name}: output differs from the native run");
}

fn counter_lines(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn counter_survives_checkpoint_kill_restore() {
    let dir = Scratch::new();
    let prog = compile(&dir, "counter", &[]);
    let native = dir.path("native.txt");
    let st = Command::new(&prog)
        .arg(&native)
        .arg("150")
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.path("out.txt");
    let st = run_with_cycles(os(&[&prog, &out, &"150"]), 1, Duration::from_millis(120));
    assert_eq!(st, ExitStatus::Code(0));
    let a = std::fs::read_to_string(&native).unwrap();
    let b = std::fs::read_to_string(&out).unwrap();
    assert_eq!(counter_lines(&a), counter_lines(&b));
    // getpid() inside the sandbox is 2 before and after every restore.
    assert!(
        b.lines()
            .filter(|l| *l != "done")
            .all(|l| l.ends_with(" 2")),
        "pid must stay 2:\n{b}"
    );
}

#[test]
fn counter_restored_twice() {
    let dir = Scratch::new();
    let prog = compile(&dir, "counter", &[]);
    let out = dir.path("out.txt");
    let st = run_with_cycles(os(&[&prog, &out, &"200"]), 3, Duration::from_millis(100));
    assert_eq!(st, ExitStatus::Code(0));
    let b = std::fs::read_to_string(&out).unwrap();
    let want: Vec<String> = (0..200)
        .map(|i| i.to_string())
        .chain(["done".to_string()])
        .collect();
    assert_eq!(counter_lines(&b), want);
}

#[test]
fn unlimited_stack_counter() {
    let dir = Scratch::new();
    let prog = compile(&dir, "counter", &[]);
    let out = dir.path("out.txt");
    let script = format!(
        "ulimit -s unlimited && exec {} {} 150",
        prog.display(),
        out.display()
    );
    let st = run_with_cycles(
        os(&[&"/bin/sh", &"-c", &script]),
        2,
        Duration::from_millis(100),
    );
    assert_eq!(st, ExitStatus::Code(0));
    let b = std::fs::read_to_string(&out).unwrap();
    let want: Vec<String> = (0..150)
        .map(|i| i.to_string())
        .chain(["done".to_string()])
        .collect();
    assert_eq!(counter_lines(&b), want);
}

#[test]
fn four_threads_mutex_condvar() {
    differential("threads", &["600"], 3, 150);
}

#[test]
fn xmm_ymm_registers_survive() {
    differential("vector", &[], 2, 100);
}

#[test]
fn sleeps_resume_without_eintr() {
    differential("sleeper", &[], 3, 50);
}

#[test]
fn malloc_free_heavy() {
    differential("mallocs", &[], 2, 120);
}

#[test]
fn deleted_but_open_file() {
    differential("deleted", &[], 2, 100);
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fresh descriptors that we wrap once each.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

fn wait_for(path: &std::path::Path, text: &str) {
    for _ in 0..500 {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(text)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never contained {text:?}", path.display());
}

#[test]
fn blocked_pipe_read_resumes() {
    let dir = Scratch::new();
    let prog = compile(&dir, "piperead", &[]);
    let out = dir.path("out.txt");
    let (r, mut w) = pipe();
    let mut sb = Sandbox::launch_with(ChildSpec::Exec {
        argv: os(&[&prog, &out]),
        stdio: Some([r.as_raw_fd(), 1, 2]),
    })
    .unwrap();
    drop(r);
    w.write_all(b"alpha\n").unwrap();
    wait_for(&out, "1 alpha\n");
    std::thread::sleep(Duration::from_millis(50));
    let mut store = MemoryImageStore::new();
    let image = cairn_capture::checkpoint(&sb, &mut store).unwrap();
    sb.kill().unwrap();
    assert_eq!(sb.wait().unwrap(), ExitStatus::Signal(9));
    drop(w);
    let (r2, mut w2) = pipe();
    let opts = cairn_restore::RestoreOptions {
        stdio: Some([r2.as_raw_fd(), 1, 2]),
    };
    let mut sb = cairn_restore::restore_with(&image, &store, &opts).unwrap();
    drop(r2);
    std::thread::sleep(Duration::from_millis(50));
    w2.write_all(b"beta\n").unwrap();
    drop(w2);
    assert_eq!(sb.wait().unwrap(), ExitStatus::Code(0));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "1 alpha\n2 beta\neof\n"
    );
}

#[test]
fn signal_timer_altstack_name_umask_cwd() {
    differential("sigstate", &[], 2, 150);
}

/// Run an interpreter script natively and under cairn with restore cycles; compare outputs.
fn script_differential(interp: &str, script_for: impl Fn(&str) -> String) {
    let dir = Scratch::new();
    let native = dir.path("native.txt");
    let st = Command::new(interp)
        .args(["-e", &script_for(&native.to_string_lossy())])
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.path("out.txt");
    let script = script_for(&out.to_string_lossy());
    let st = run_with_cycles(
        os(&[&interp, &"-e", &script]),
        3,
        Duration::from_millis(150),
    );
    assert_eq!(st, ExitStatus::Code(0));
    assert_eq!(
        std::fs::read_to_string(&native).unwrap(),
        std::fs::read_to_string(&out).unwrap()
    );
}

#[test]
fn python3_script() {
    let dir = Scratch::new();
    let script = |path: &str| {
        format!(
            "import time, hashlib\nf = open('{path}', 'w')\nh = hashlib.sha256()\n\
             for i in range(300):\n    h.update(str(i).encode())\n    \
             f.write('%d %s\\n' % (i, h.hexdigest()[:16]))\n    f.flush()\n    \
             time.sleep(0.002)\nf.write('done\\n')\n"
        )
    };
    let native = dir.path("native.txt");
    let py = "/usr/bin/python3";
    let st = Command::new(py)
        .args(["-c", &script(&native.to_string_lossy())])
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.path("out.txt");
    let s = script(&out.to_string_lossy());
    let st = run_with_cycles(os(&[&py, &"-c", &s]), 3, Duration::from_millis(150));
    assert_eq!(st, ExitStatus::Code(0));
    assert_eq!(
        std::fs::read_to_string(&native).unwrap(),
        std::fs::read_to_string(&out).unwrap()
    );
}

#[test]
fn perl_script() {
    script_differential("/usr/bin/perl", |path| {
        format!(
            "open(F, '>', '{path}') or die; select F; $| = 1; my $s = 0; \
             for my $i (0..299) {{ $s = ($s * 31 + $i) % 1000003; print \"$i $s\\n\"; \
             select(undef, undef, undef, 0.002); }} print \"done\\n\";"
        )
    });
}

#[test]
fn all_mapping_kinds_and_a_large_heap() {
    differential("memkinds", &["256"], 2, 400);
}

#[test]
fn proc_view_of_restored_program_matches() {
    let dir = Scratch::new();
    let prog = compile(&dir, "threads", &[]);
    let out = dir.path("out.txt");
    let mut sb = Sandbox::launch(&os(&[&prog, &out, &"3000"])).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let view = |pid: i32| {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        let mut tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|e| {
                let tid = e.unwrap().file_name().into_string().unwrap();
                let st = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
                st.lines()
                    .find(|l| l.starts_with("NSpid:"))
                    .and_then(|l| l.split_whitespace().last())
                    .unwrap()
                    .to_string()
            })
            .collect();
        tids.sort();
        (exe, cmdline, comm, tids)
    };
    let before = view(sb.program_pid());
    assert_eq!(before.3.len(), 5, "main + 4 threads");
    for _ in 0..2 {
        let (r, _) = cycle(sb);
        sb = r;
        assert_eq!(view(sb.program_pid()), before);
    }
    sb.kill().unwrap();
    sb.wait().unwrap();
}

#[test]
fn threads_born_and_dying_during_checkpoints() {
    differential("churn", &[], 4, 80);
}

#[test]
fn monotonic_clocks_continue_across_restore() {
    let dir = Scratch::new();
    let prog = compile(&dir, "clocks", &[]);
    let out = dir.path("out.txt");
    let mut sb = Sandbox::launch(&os(&[&prog, &out])).unwrap();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(100));
        let mut store = MemoryImageStore::new();
        let image = cairn_capture::checkpoint(&sb, &mut store).unwrap();
        sb.kill().unwrap();
        sb.wait().unwrap();
        // Downtime longer than the jump the program detects.
        std::thread::sleep(Duration::from_millis(1500));
        sb = cairn_restore::restore(&image, &store).unwrap();
    }
    assert_eq!(sb.wait().unwrap(), ExitStatus::Code(0));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "jumps 0\n");
}
