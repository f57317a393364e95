//! Process trees: native output == output after checkpoint → kill -9 → restore cycles of
//! programs with child processes (shell loops, fork/wait with zombies).

mod common;

use cairn_sys::ExitStatus;
use common::*;
use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Run `argv` with stdout to `out` (truncated, like `>`) and `cycles` checkpoint/kill/restore
/// cycles `delay` apart; returns the exit status, the largest number of processes seen and
/// the most unread pipe bytes seen in one checkpoint.
fn run_tree(
    argv: Vec<OsString>,
    out: &Path,
    cycles: usize,
    delay: Duration,
) -> (ExitStatus, usize, u64) {
    let (st, images) = run_cycles_to_file(argv, out, cycles, delay);
    let most = images
        .iter()
        .map(|i| i.processes.len() + i.zombies.len())
        .max()
        .unwrap_or(0);
    let unread = images
        .iter()
        .map(|i| i.pipes.iter().map(|p| p.unread).sum::<u64>())
        .max()
        .unwrap_or(0);
    (st, most, unread)
}

/// `bash -c script` natively and under 3 checkpoint/kill/restore cycles `delay` apart: both
/// must succeed with the same output; returns (most processes, most unread pipe bytes) seen.
fn bash_native_vs_cycles(dir: &Scratch, script: &str, delay: Duration) -> (usize, u64) {
    let native = dir.path("native.txt");
    let st = Command::new("/bin/bash")
        .args(["-c", script])
        .stdout(Stdio::from(File::create(&native).unwrap()))
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.path("out.txt");
    let (st, most, unread) = run_tree(os(&[&"/bin/bash", &"-c", &script]), &out, 3, delay);
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert_eq!(read(&native), read(&out));
    (most, unread)
}

#[test]
fn shell_loop_with_sleep_children() {
    let dir = Scratch::new();
    let script = "for i in $(seq 1 40); do echo $i; sleep 0.03; done";
    let (most, _) = bash_native_vs_cycles(&dir, script, Duration::from_millis(200));
    assert!(most >= 2, "no checkpoint caught a child process");
}

#[test]
fn fork_wait_with_zombie() {
    let dir = Scratch::new();
    let prog = compile(&dir, "forker", &[]);
    let nd = dir.path("native");
    let cd = dir.path("cairn");
    std::fs::create_dir_all(&nd).unwrap();
    std::fs::create_dir_all(&cd).unwrap();
    let st = Command::new(&prog)
        .arg(&nd)
        .arg("150")
        .stdout(Stdio::from(File::create(nd.join("out")).unwrap()))
        .status()
        .unwrap();
    assert!(st.success());
    let (st, most, _) = run_tree(
        os(&[&prog, &cd, &"150"]),
        &cd.join("out"),
        3,
        Duration::from_millis(100),
    );
    assert_eq!(
        st,
        ExitStatus::Code(0),
        "output:\n{}",
        read(&cd.join("out"))
    );
    for f in ["out", "child0.txt", "child1.txt", "child2.txt"] {
        assert_eq!(read(&nd.join(f)), read(&cd.join(f)), "{f} differs");
    }
    assert_eq!(most, 4);
}

#[test]
fn pipeline_with_unread_data_in_pipes() {
    let dir = Scratch::new();
    let script = "seq 1 20000 | awk '{ s += $1; if (NR % 500 == 0) { print s; fflush(); \
                  system(\"sleep 0.01\") } }' | sort -n | tail -5";
    let (most, unread) = bash_native_vs_cycles(&dir, script, Duration::from_millis(120));
    assert!(most >= 4, "the pipeline was not running at the checkpoints");
    assert!(unread > 0, "no checkpoint saw unread bytes in a pipe");
}

#[test]
fn parent_and_children_share_memory_and_a_pipe() {
    let dir = Scratch::new();
    let prog = compile(&dir, "shmcount", &[]);
    let native = dir.path("native.txt");
    let st = Command::new(&prog)
        .arg("120")
        .stdout(Stdio::from(File::create(&native).unwrap()))
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.path("out.txt");
    let (st, most, _) = run_tree(os(&[&prog, &"120"]), &out, 3, Duration::from_millis(90));
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert_eq!(read(&native), read(&out));
    assert!(read(&out).contains("counter 360"));
    assert_eq!(most, 4);
}

#[test]
fn python_multiprocessing_pool_and_queue() {
    let dir = Scratch::new();
    let script = "import multiprocessing as mp, time\n\
                  def sq(x):\n\
                  \x20   time.sleep(0.004)\n\
                  \x20   return x * x\n\
                  def producer(q):\n\
                  \x20   for i in range(150):\n\
                  \x20       q.put(i)\n\
                  \x20       time.sleep(0.003)\n\
                  \x20   q.put(None)\n\
                  if __name__ == '__main__':\n\
                  \x20   mp.set_start_method('fork')\n\
                  \x20   q = mp.Queue()\n\
                  \x20   p = mp.Process(target=producer, args=(q,))\n\
                  \x20   p.start()\n\
                  \x20   got = []\n\
                  \x20   while (x := q.get()) is not None:\n\
                  \x20       got.append(x)\n\
                  \x20   p.join()\n\
                  \x20   print('queue', len(got), sum(got), flush=True)\n\
                  \x20   with mp.Pool(2) as pool:\n\
                  \x20       for r in pool.imap(sq, range(150)):\n\
                  \x20           print(r, flush=True)\n";
    let native = dir.path("native.txt");
    let st = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdout(Stdio::from(File::create(&native).unwrap()))
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.path("out.txt");
    let (st, most, _) = run_tree(
        os(&[&"/usr/bin/python3", &"-c", &script]),
        &out,
        3,
        Duration::from_millis(250),
    );
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert_eq!(read(&native), read(&out));
    assert!(most >= 2, "no checkpoint caught a child process");
}

/// Copy the tiny make project into `dir` with generated sources.
fn make_project(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mk = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/progs/make/Makefile");
    std::fs::copy(mk, dir.join("Makefile")).unwrap();
    let mut main = String::from("#include <stdio.h>\n");
    let mut sum = String::new();
    for (i, n) in ["a", "b", "c", "d"].iter().enumerate() {
        std::fs::write(
            dir.join(format!("{n}.c")),
            format!("int f{n}(int x) {{ return x * {} + {i}; }}\n", i + 2),
        )
        .unwrap();
        main.push_str(&format!("int f{n}(int);\n"));
        sum.push_str(&format!(" + f{n}(7)"));
    }
    main.push_str(&format!(
        "int main(void) {{ printf(\"%d\\n\", 0{sum}); return 0; }}\n"
    ));
    std::fs::write(dir.join("main.c"), main).unwrap();
}

#[test]
fn make_j2_of_a_small_c_project() {
    let dir = Scratch::new();
    let (nd, cd) = (dir.path("native"), dir.path("cairn"));
    make_project(&nd);
    make_project(&cd);
    let st = Command::new("make")
        .args(["-s", "-j2", "-C"])
        .arg(&nd)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.path("make.out");
    let (st, most, _) = run_tree(
        os(&[&"/usr/bin/make", &"-s", &"-j2", &"-C", &cd]),
        &out,
        3,
        Duration::from_millis(150),
    );
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert!(most >= 2, "no checkpoint caught make's children");
    let run = |d: &Path| {
        let o = Command::new(d.join("prog")).output().unwrap();
        assert!(o.status.success());
        o.stdout
    };
    assert_eq!(run(&nd), run(&cd));
}

#[test]
fn process_groups_and_sessions_survive() {
    let dir = Scratch::new();
    let prog = compile(&dir, "pgroup", &[]);
    let native = Command::new(&prog).arg("600").output().unwrap();
    assert!(native.status.success());
    let out = dir.path("out.txt");
    let (st, most, _) = run_tree(os(&[&prog, &"600"]), &out, 3, Duration::from_millis(150));
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert_eq!(String::from_utf8_lossy(&native.stdout), read(&out));
    assert!(read(&out).contains("a leads its group: 1"));
    assert_eq!(most, 3);
}
