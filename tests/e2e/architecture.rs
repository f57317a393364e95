//! docs/architecture.md tells which crate depends on which; Cargo must agree, so the page
//! cannot drift from the code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The graph the page states: the lines `- \`crate\`: dep, dep` of its section
/// "Dependencies between the crates" (`(none)` for a crate without any).
fn documented() -> Graph {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md");
    let text = std::fs::read_to_string(&page).expect("reading docs/architecture.md");
    let section = text
        .split("## Dependencies between the crates")
        .nth(1)
        .expect("docs/architecture.md has a section \"Dependencies between the crates\"");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut graph = Graph::new();
    for line in section.lines() {
        let Some(rest) = line.strip_prefix("- `") else {
            continue;
        };
        let (name, deps) = rest.split_once("`:").expect("a line `- `crate`: deps`");
        let deps = deps
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_string())
            .filter(|d| !d.is_empty() && d != "(none)")
            .collect();
        graph.insert(name.to_string(), deps);
    }
    graph
}

/// The graph Cargo sees: for every package of the workspace, its normal (not dev, not build)
/// dependencies on other packages of the workspace.
fn cargo_graph() -> Graph {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {out:?}");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata json");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("package name").to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().expect("dependency name").to_string())
                .filter(|d| names.contains(d))
                .collect();
            (p["name"].as_str().expect("package name").to_string(), deps)
        })
        .collect()
}

#[test]
fn the_crate_graph_in_docs_architecture_is_the_one_cargo_builds() {
    assert_eq!(
        documented(),
        cargo_graph(),
        "docs/architecture.md, section \"Dependencies between the crates\", must list every \
         workspace crate with exactly its normal dependencies on other workspace crates"
    );
}
