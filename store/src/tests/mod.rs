//! Unit tests that need a whole store (the [`crate::Store`] handle) and the crate's
//! internals; they live here so that the modules they test never import the handle.

mod extent_reads;
mod maintenance;
mod prefetch;
mod race_with_gc;

/// `len` incompressible pseudo-random bytes from `seed` (xorshift64).
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut r = seed | 1;
    (0..len)
        .map(|_| {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            (r >> 24) as u8
        })
        .collect()
}
