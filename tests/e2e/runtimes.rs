//! Real language runtimes and tools whose event loops are built on epoll, eventfd, timers and
//! inotify give the output of a native run after three checkpoint → kill -9 → restart cycles:
//! Go (goroutines, timers, channels), Java NIO (a Selector over a Pipe, a timer thread),
//! Node.js (timers, `fs.watch`) and `tail -f` following a growing file, each as the test's
//! own user (root in CI) and as the unprivileged user (whose cairn finds watched files by
//! their inodes). The runtimes are installed by scripts/setup.sh.

use cairn_testkit::{self as common, differential, Area, Cycles, Program};

/// A Go program: worker goroutines fed through channels, a time.Ticker pacing the rounds,
/// time.Sleep in the workers and a select with a time.After deadline.
#[test]
fn go_goroutines_timers_and_channels() {
    let _area = Area::enter(module_path!());
    let prog = Program::go("go_timers", &["300"]);
    let out = differential(&prog, "go", &Cycles::default());
    assert!(out.stdout.ends_with(b"ticks 300 total 756690216\ndone\n"));
}

#[test]
fn go_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    common::open_up(&common::compile_go("go_timers"));
    let prog = Program::go("go_timers", &["300"]).run_as("cairn-test");
    let out = differential(&prog, "go-user", &Cycles::default());
    assert!(out.stdout.ends_with(b"ticks 300 total 756690216\ndone\n"));
}

/// A Java program: an NIO Selector over a Pipe fed by a sleeping writer thread and woken by
/// a java.util.Timer.
#[test]
fn java_nio_selector_over_a_pipe_with_a_timer() {
    let _area = Area::enter(module_path!());
    let prog = Program::java("NioSelector", &[], &["300"]);
    let out = differential(&prog, "java", &Cycles::default());
    assert!(out
        .stdout
        .ends_with(b"received 300 sum 8955050\ntimer woke the selector: true\ndone\n"));
}

#[test]
fn java_nio_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    common::open_up(&common::compile_java("NioSelector"));
    let prog = Program::java("NioSelector", &[], &["300"]).run_as("cairn-test");
    let out = differential(&prog, "java-user", &Cycles::default());
    assert!(out
        .stdout
        .ends_with(b"received 300 sum 8955050\ntimer woke the selector: true\ndone\n"));
}

/// A Node.js program: setTimeout and setInterval timers and fs.watch on a directory in which
/// one file after another is created.
#[test]
fn node_timers_and_file_watching() {
    let _area = Area::enter(module_path!());
    let prog = Program::script("node", "node_watch.js", &["200"]).with_files(&["watched/file-199"]);
    let out = differential(&prog, "node", &Cycles::default());
    assert!(out
        .stdout
        .ends_with(b"files 200 bytes 1690 sum 2646700\ninterval ran: true\ndone\n"));
}

#[test]
fn node_file_watching_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    common::open_up(&common::programs_dir().join("node_watch.js"));
    let prog = Program::script("/usr/bin/node", "node_watch.js", &["200"])
        .with_files(&["watched/file-199"])
        .run_as("cairn-test");
    let out = differential(&prog, "node-user", &Cycles::default());
    assert!(out
        .stdout
        .ends_with(b"files 200 bytes 1690 sum 2646700\ninterval ran: true\ndone\n"));
}

/// `tail -f` following a file that a writer process of the job appends a line to every
/// 20 ms; tail ends when the writer has.
#[test]
fn tail_follows_a_growing_file() {
    let _area = Area::enter(module_path!());
    let prog = Program::script("sh", "tail_follow.sh", &["200"]).with_files(&["growing.log"]);
    let out = differential(&prog, "tail", &Cycles::default());
    assert!(out.stdout.ends_with(b"line 200 of 200: 40000\ndone\n"));
}

#[test]
fn tail_follows_a_growing_file_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    common::open_up(&common::programs_dir().join("tail_follow.sh"));
    let prog = Program::script("sh", "tail_follow.sh", &["200"])
        .with_files(&["growing.log"])
        .run_as("cairn-test");
    let out = differential(&prog, "tail-user", &Cycles::default());
    assert!(out.stdout.ends_with(b"line 200 of 200: 40000\ndone\n"));
}
