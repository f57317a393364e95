//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use cairn_store::{GenerationInfo, StreamRef};

/// `len` pseudo-random (incompressible) bytes from `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
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
