//! UNIX sockets, FIFOs and System V shared memory between processes of a tree: native output
//! == output after checkpoint → kill -9 → restore cycles, with data in flight at the
//! checkpoints.

mod common;

use cairn_image::ProcessTreeImage;
use cairn_sys::ExitStatus;
use common::*;
use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Bytes unread in the job's sockets over all `images`.
fn socket_bytes(images: &[ProcessTreeImage]) -> u64 {
    images
        .iter()
        .flat_map(|i| &i.ipc.sockets)
        .map(|s| s.messages.iter().sum::<u64>())
        .sum()
}

fn native(prog: &dyn AsRef<std::ffi::OsStr>, args: &[&str], out: &Path) {
    let st = Command::new(prog)
        .args(args)
        .stdout(Stdio::from(File::create(out).unwrap()))
        .status()
        .unwrap();
    assert!(st.success(), "native run failed: {st}");
}

#[test]
fn socketpairs_stream_seqpacket_and_dgram_with_data_in_flight() {
    let dir = Scratch::new();
    let prog = compile(&dir, "sockpair", &[]);
    let nat = dir.path("native.txt");
    native(&prog, &["500"], &nat);
    let out = dir.path("out.txt");
    let (st, images) =
        run_cycles_to_file(os(&[&prog, &"500"]), &out, 3, Duration::from_millis(150));
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert_eq!(read(&nat), read(&out));
    assert!(
        images.iter().all(|i| i.ipc.sockets.len() == 6),
        "the socketpairs were not in every checkpoint"
    );
    assert!(
        images
            .iter()
            .flat_map(|i| &i.ipc.sockets)
            .any(|s| s.sock_type == libc::SOCK_SEQPACKET && s.messages.len() > 1),
        "no checkpoint saw several seqpacket messages queued"
    );
    assert!(
        images
            .iter()
            .flat_map(|i| &i.ipc.sockets)
            .any(|s| s.sock_type == libc::SOCK_DGRAM && s.messages.len() > 1),
        "no checkpoint saw several datagrams queued"
    );
    assert!(socket_bytes(&images) > 0, "no unread socket data");
}

#[test]
fn python_multiprocessing_duplex_pipe() {
    let dir = Scratch::new();
    let script = "import multiprocessing as mp, time\n\
                  def worker(c):\n\
                  \x20   while (x := c.recv()) is not None:\n\
                  \x20       c.send(x * x)\n\
                  \x20       time.sleep(0.002)\n\
                  \x20   c.send('bye')\n\
                  if __name__ == '__main__':\n\
                  \x20   mp.set_start_method('fork')\n\
                  \x20   a, b = mp.Pipe(duplex=True)\n\
                  \x20   p = mp.Process(target=worker, args=(b,))\n\
                  \x20   p.start()\n\
                  \x20   for i in range(600):\n\
                  \x20       a.send(i)\n\
                  \x20       if i >= 20:\n\
                  \x20           print(a.recv(), flush=True)\n\
                  \x20           time.sleep(0.002)\n\
                  \x20   for i in range(20):\n\
                  \x20       print(a.recv(), flush=True)\n\
                  \x20   a.send(None)\n\
                  \x20   print(a.recv(), flush=True)\n\
                  \x20   p.join()\n\
                  \x20   print('exit', p.exitcode, flush=True)\n";
    let nat = dir.path("native.txt");
    native(&"/usr/bin/python3", &["-c", script], &nat);
    let out = dir.path("out.txt");
    let (st, images) = run_cycles_to_file(
        os(&[&"/usr/bin/python3", &"-c", &script]),
        &out,
        3,
        Duration::from_millis(250),
    );
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert_eq!(read(&nat), read(&out));
    assert!(
        images.iter().any(|i| !i.ipc.sockets.is_empty()),
        "no checkpoint caught the pipe's sockets"
    );
}

#[test]
fn two_processes_over_a_fifo() {
    let dir = Scratch::new();
    let prog = compile(&dir, "fifo", &[]);
    let (nd, cd) = (dir.path("native"), dir.path("cairn"));
    std::fs::create_dir_all(&nd).unwrap();
    std::fs::create_dir_all(&cd).unwrap();
    let nat = dir.path("native.txt");
    native(&prog, &[nd.to_str().unwrap(), "600"], &nat);
    let out = dir.path("out.txt");
    let (st, images) = run_cycles_to_file(
        os(&[&prog, &cd, &"600"]),
        &out,
        3,
        Duration::from_millis(250),
    );
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert_eq!(read(&nat), read(&out));
    assert!(
        images
            .iter()
            .flat_map(|i| &i.ipc.fifos)
            .any(|f| f.unread > 0),
        "no checkpoint saw unread bytes in the FIFO"
    );
}

#[test]
fn unix_path_server_with_two_clients() {
    unix_server(None);
}

#[test]
fn unix_abstract_name_server_with_two_clients() {
    unix_server(Some(format!("cairn-test-{}", std::process::id())));
}

fn unix_server(abstract_name: Option<String>) {
    let dir = Scratch::new();
    let prog = compile(&dir, "unixserver", &[]);
    let (nd, cd) = (dir.path("native"), dir.path("cairn"));
    std::fs::create_dir_all(&nd).unwrap();
    std::fs::create_dir_all(&cd).unwrap();
    let nat = dir.path("native.txt");
    let extra: Vec<&str> = abstract_name.iter().map(|s| s.as_str()).collect();
    let mut args = vec![nd.to_str().unwrap(), "500"];
    args.extend(&extra);
    native(&prog, &args, &nat);
    let out = dir.path("out.txt");
    let mut argv = os(&[&prog, &cd, &"500"]);
    argv.extend(extra.iter().map(OsString::from));
    let (st, images) = run_cycles_to_file(argv, &out, 3, Duration::from_millis(200));
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert_eq!(read(&nat), read(&out));
    assert!(read(&out).contains("late client said bye"));
    assert!(
        images.iter().all(|i| i
            .ipc
            .sockets
            .iter()
            .any(|s| matches!(s.state, cairn_image::SocketState::Listening { .. }))),
        "the listener was not in every checkpoint"
    );
    assert!(socket_bytes(&images) > 0, "no unread socket data");
}

#[test]
fn system_v_shared_memory_between_parent_and_children() {
    let dir = Scratch::new();
    let prog = compile(&dir, "sysvshm", &[]);
    let nat = dir.path("native.txt");
    native(&prog, &["300"], &nat);
    let out = dir.path("out.txt");
    let (st, images) =
        run_cycles_to_file(os(&[&prog, &"300"]), &out, 3, Duration::from_millis(250));
    assert_eq!(st, ExitStatus::Code(0), "output:\n{}", read(&out));
    assert_eq!(read(&nat), read(&out));
    assert!(read(&out).contains("counter 900"));
    for i in &images {
        assert_eq!(i.ipc.sysv_shm.len(), 3, "{:?}", i.ipc.sysv_shm);
        assert!(i.ipc.sysv_shm.iter().any(|s| s.removed()));
    }
}
