//! "Nodes" on one machine for the multi-node tests: network namespaces joined by veth pairs
//! on a bridge of the host, in a private /24 chosen per test (`10.213.N.0/24`). The host
//! side of the bridge is `10.213.N.254`, where a coordinator listens; node `i` is
//! `10.213.N.(i+1)`. Everything is removed when the [`Nodes`] value is dropped (also when a
//! test fails). Needs root (`ip netns`); callers skip otherwise.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A set of network namespaces on one bridge.
pub struct Nodes {
    net: u8,
    bridge: String,
    names: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("setting up the test nodes: {e}");
    }
}

impl Nodes {
    /// Creates a bridge and `count` nodes on a /24 of 10.213.0.0/16 that no other test of
    /// this machine uses now.
    pub fn create(count: usize) -> Nodes {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let start = std::process::id().wrapping_mul(31);
        for _ in 0..250 {
            let net = ((start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))) % 250 + 1) as u8;
            let bridge = format!("cairnbr{net}");
            // Taken by a test running now (creating the bridge is the claim).
            if ip(&["link", "add", &bridge, "type", "bridge"]).is_err() {
                continue;
            }
            let mut nodes = Nodes {
                net,
                bridge,
                names: Vec::new(),
            };
            let host = format!("{}/24", nodes.host_addr());
            must(&["addr", "add", &host, "dev", &nodes.bridge]);
            must(&["link", "set", &nodes.bridge, "up"]);
            for _ in 0..count {
                nodes.add_node();
            }
            return nodes;
        }
        panic!("no free 10.213.N.0/24 for the test nodes");
    }

    /// Adds one more node (namespace) to the bridge; returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.names.len();
        let name = format!("cairn-{}-{i}", self.net);
        let host_end = format!("cbr{}h{i}", self.net);
        let node_end = format!("cbr{}n{i}", self.net);
        must(&["netns", "add", &name]);
        self.names.push(name.clone());
        must(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
        ]);
        must(&["link", "set", &node_end, "netns", &name]);
        must(&["link", "set", &host_end, "master", &self.bridge, "up"]);
        let addr = format!("{}/24", self.addr(i));
        must(&["-n", &name, "addr", "add", &addr, "dev", &node_end]);
        must(&["-n", &name, "link", "set", &node_end, "up"]);
        must(&["-n", &name, "link", "set", "lo", "up"]);
        i
    }

    /// The host's address on the bridge (every node reaches it).
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.net, 254)
    }

    /// The address of node `i`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.net, i as u8 + 1)
    }

    /// The namespace of node `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// `prog args...` to be run on node `i` (`ip netns exec NAME prog args...`).
    pub fn command(&self, i: usize, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i]]).arg(prog);
        c
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth pair inside it; processes still running in
        // it keep it alive until they end, but its name is gone.
        for n in &self.names {
            let _ = ip(&["netns", "delete", n]);
        }
        let _ = ip(&["link", "delete", &self.bridge]);
    }
}
