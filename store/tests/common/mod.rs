//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use cairn_store::{GenerationInfo, StreamRef};

/// `len` pseudo-random (incompressible) bytes from `seed` (`synth`'s random data).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    cairn_bench::synth::fill(&mut v, cairn_bench::synth::SynthKind::Random, seed);
    v
}

/// Generation info of kind "test" with `stats`.
pub fn info(stats: cairn_store::WriteStats) -> GenerationInfo {
    GenerationInfo {
        kind: "test".into(),
        stats,
        ..Default::default()
    }
}

/// Writes `data` as a memory stream through `w`.
pub fn put_mem(w: &mut cairn_store::Writer, data: &[u8]) -> StreamRef {
    w.put_memory(data.len() as u64, &|off, buf: &mut [u8]| {
        let o = off as usize;
        buf.copy_from_slice(&data[o..o + buf.len()]);
        Ok(())
    })
    .unwrap()
}

/// Reopens the store at `dir` as if an earlier build had made it with store format `format`
/// (1: memory deltas are whole chunks; 3: page-granular slices).
pub fn with_format(dir: &std::path::Path, format: u32) -> cairn_store::Store {
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["format"] = format.into();
    std::fs::write(&cfg, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    cairn_store::Store::open(dir).unwrap()
}
