//! Codec policy: which encoding a chunk is stored with (the incompressibility probe, zstd or
//! LZ4, raw when compression does not pay), and decoding payloads back.

use crate::config::Compression;
use crate::error::StoreError;
use crate::pack::format::{check_hash, Codec, PackEntry};

/// Encode `raw` for its pack with the store's `compression` (zstd at `level`, or LZ4) into
/// `out` (contents discarded, allocation reused); returns the codec the payload is in. With
/// [`Codec::Raw`], the payload is `raw` itself and `out` is unspecified.
pub(crate) fn encode_chunk(
    raw: &[u8],
    compression: Compression,
    level: i32,
    out: &mut Vec<u8>,
) -> Codec {
    let compressed = match compression {
        Compression::Lz4 => compress_lz4_into(raw, out),
        Compression::Zstd => compress_into(raw, level, out),
    };
    match (compressed, compression) {
        (false, _) => Codec::Raw,
        (true, Compression::Lz4) => Codec::Lz4,
        (true, Compression::Zstd) => Codec::Zstd,
    }
}

/// Decode a payload read from a pack and check its hash.
pub fn decode_payload(e: &PackEntry, payload: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    let data = match e.codec {
        Codec::Raw => payload,
        Codec::Zstd => zstd::bulk::decompress(&payload, e.raw_len as usize).map_err(|err| {
            StoreError::Corrupt(format!("chunk {}: cannot decompress: {err}", e.id))
        })?,
        Codec::Lz4 => lz4_flex::block::decompress(&payload, e.raw_len as usize).map_err(|err| {
            StoreError::Corrupt(format!("chunk {}: cannot decompress: {err}", e.id))
        })?,
    };
    check_hash(e, &data)?;
    Ok(data)
}

/// Decode a compressed payload of `codec` into `out`; returns the bytes written (a raw
/// payload is copied).
pub(crate) fn decode_to(codec: Codec, payload: &[u8], out: &mut [u8]) -> std::io::Result<usize> {
    match codec {
        Codec::Raw => {
            let n = payload.len().min(out.len());
            out[..n].copy_from_slice(&payload[..n]);
            Ok(n)
        }
        Codec::Zstd => decompress_to(payload, out),
        Codec::Lz4 => lz4_flex::block::decompress_into(payload, out).map_err(std::io::Error::other),
    }
}

/// Decompress the zstd frame `payload` into `out` with this thread's decompressor; returns
/// the bytes written.
pub(crate) fn decompress_to(payload: &[u8], out: &mut [u8]) -> std::io::Result<usize> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        match slot.as_mut() {
            Some(d) => d.decompress_to_buffer(payload, out),
            None => zstd::bulk::decompress_to_buffer(payload, out),
        }
    })
}

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Chunks shorter than this are always given to zstd (the probe needs enough samples).
const PROBE_MIN_LEN: usize = 8192;
/// The incompressibility probe samples windows of this many bytes...
const PROBE_WINDOW: usize = 32;
/// ...spread evenly over the chunk, 1/16 of it, at least 32 and at most 128 windows (1 to 4
/// KiB sampled).
const PROBE_MAX_WINDOWS: usize = 128;
/// A sample is taken for incompressible when its byte entropy is within this many bits per
/// byte of what uniformly random bytes give on a sample of its size (7.82 bits on 1 KiB, 7.955
/// on 4 KiB: the plug-in estimate is biased low by 255 / (2 n ln 2)). At that entropy zstd's
/// entropy coding alone cannot save the 1/32 a chunk must save to be stored compressed.
const PROBE_ENTROPY_MARGIN: f64 = 0.08;

/// `c * log2(c)` for every count a probe histogram can hold (0 for 0).
fn c_log2_c() -> &'static [f64] {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=PROBE_MAX_WINDOWS * PROBE_WINDOW)
            .map(|c| {
                if c == 0 {
                    0.0
                } else {
                    c as f64 * (c as f64).log2()
                }
            })
            .collect()
    })
}

/// Cheap incompressibility probe (like btrfs's compression heuristic): samples windows of
/// `PROBE_WINDOW` bytes spread over `raw` (1/16 of it) and returns true when their byte
/// entropy is that of random bytes and no two windows start alike (equal windows hint at
/// repeated content that zstd would find). Costs about 1/15 of a zstd attempt on random data.
pub fn looks_incompressible(raw: &[u8]) -> bool {
    if raw.len() < PROBE_MIN_LEN {
        return false;
    }
    let windows = (raw.len() / 16 / PROBE_WINDOW).clamp(32, PROBE_MAX_WINDOWS);
    let stride = raw.len() / windows;
    let mut hist = [0u32; 256];
    let mut heads = [0u64; PROBE_MAX_WINDOWS];
    let heads = &mut heads[..windows];
    for (k, head) in heads.iter_mut().enumerate() {
        let w = &raw[k * stride..k * stride + PROBE_WINDOW];
        for &b in w {
            hist[b as usize] += 1;
        }
        let mut h = [0u8; 8];
        h.copy_from_slice(&w[..8]);
        *head = u64::from_le_bytes(h);
    }
    let n = (windows * PROBE_WINDOW) as f64;
    // H = -sum p log2 p = log2 n - (sum c log2 c) / n, with c log2 c from a table (the
    // 256 log2 calls per chunk were a third of the probe's time).
    let table = c_log2_c();
    let sum: f64 = hist.iter().map(|&c| table[c as usize]).sum();
    let entropy = n.log2() - sum / n;
    let random = 8.0 - 255.0 / (2.0 * n * std::f64::consts::LN_2);
    if entropy < random - PROBE_ENTROPY_MARGIN {
        return false;
    }
    heads.sort_unstable();
    heads.windows(2).all(|w| w[0] != w[1])
}

/// Compress `raw` with zstd at `level` into `out` (its previous contents are discarded, its
/// allocation reused). Returns false, leaving `out` unspecified, when the chunk should be
/// stored raw: the probe says it is incompressible, or zstd saves less than 1/32.
/// Reuses one zstd context per thread.
pub fn compress_into(raw: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    if looks_incompressible(raw) {
        return false;
    }
    out.clear();
    out.reserve(zstd::compress_bound(raw.len()));
    let n = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        // Writes into the spare capacity; never zero-fills it.
        slot.as_mut()
            .and_then(|(_, c)| c.compress_to_buffer(raw, out).ok())
    });
    matches!(n, Some(n) if n + raw.len() / 32 < raw.len())
}

/// Compress `raw` as one LZ4 block into `out` (contents discarded, allocation reused). Same
/// rule as `compress_into`: false when the probe says incompressible or LZ4 saves less
/// than 1/32.
pub fn compress_lz4_into(raw: &[u8], out: &mut Vec<u8>) -> bool {
    if looks_incompressible(raw) {
        return false;
    }
    out.clear();
    out.resize(lz4_flex::block::get_maximum_output_size(raw.len()), 0);
    match lz4_flex::block::compress_into(raw, out) {
        Ok(n) if n + raw.len() / 32 < raw.len() => {
            out.truncate(n);
            true
        }
        _ => false,
    }
}

/// Compress `raw` with zstd at `level`; `None` when it should be stored raw (see
/// [`compress_into`]).
#[cfg(test)]
pub fn compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress_into(raw, level, &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_skips_random_only() {
        let mut r = 0x1234_5678_9abc_def1u64;
        let random: Vec<u8> = (0..65536)
            .map(|_| {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                (r >> 24) as u8
            })
            .collect();
        assert!(looks_incompressible(&random));
        assert!(looks_incompressible(&random[..16384]));
        assert!(looks_incompressible(&random[..8192]));
        assert!(compress(&random, 1).is_none());
        // Random bytes repeated: high byte entropy, but zstd finds the repeats.
        let repeated = random[..4096].to_vec().repeat(16);
        assert!(!looks_incompressible(&repeated));
        assert!(compress(&repeated, 1).is_some());
        // Half zeros: compressible.
        let mut half = random.clone();
        half[..32768].fill(0);
        assert!(!looks_incompressible(&half));
        assert!(compress(&half, 1).is_some());
        assert!(!looks_incompressible(&[0u8; 65536]));
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(1500);
        assert!(!looks_incompressible(&text));
        // Short chunks always go to zstd.
        assert!(!looks_incompressible(&random[..4096]));
    }
}
