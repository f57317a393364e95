//! Synthetic memory images for benchmarks (`cairn-bench store`, criterion benches) and the
//! store's tests.

use rayon::prelude::*;

/// Kinds of synthetic memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthKind {
    /// Uniformly random bytes (incompressible).
    Random,
    /// All zeros (untouched anonymous memory).
    Zeros,
    /// Resembles a CPython heap: pages of object headers (small refcounts, a handful of
    /// type pointers), pointer arrays into a 64-bit heap, ASCII strings, float arrays and
    /// zero padding, in proportions measured roughly on real python3 processes.
    PythonHeap,
}

impl SynthKind {
    /// Short name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            SynthKind::Random => "incompressible",
            SynthKind::Zeros => "zeros",
            SynthKind::PythonHeap => "python-heap-like",
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: &[&str] = &[
    "self",
    "return",
    "import",
    "numpy",
    "value",
    "index",
    "None",
    "True",
    "False",
    "data",
    "__init__",
    "result",
    "config",
    "float",
    "string",
    "append",
    "items",
    "key",
    "dict",
    "list",
    "checkpoint",
    "tensor",
    "batch",
    "epoch",
    "model",
    "name",
    "path",
    "os.path.join",
    "args",
];

/// Fill `page` (4096 bytes) with python-heap-like content chosen by `r`.
fn heap_page(page: &mut [u8], r: &mut Rng) {
    let heap_base = 0x7f3a_2000_0000u64;
    let types = [
        0x55d0_1a2b_3c40u64,
        0x55d0_1a2b_4c80,
        0x55d0_1a2b_5d00,
        0x55d0_1a2b_6e40,
    ];
    match r.next() % 100 {
        0..=34 => {
            // Object headers: refcount, type pointer, then a payload word.
            for w in page.chunks_exact_mut(24) {
                let refcnt = 1 + r.next() % 6;
                let ty = types[(r.next() % 4) as usize];
                let payload = if r.next().is_multiple_of(2) {
                    r.next() % 1000
                } else {
                    heap_base + (r.next() % (1 << 24)) * 16
                };
                w[0..8].copy_from_slice(&refcnt.to_le_bytes());
                w[8..16].copy_from_slice(&ty.to_le_bytes());
                w[16..24].copy_from_slice(&payload.to_le_bytes());
            }
        }
        35..=54 => {
            // Pointer arrays (list/dict storage).
            for w in page.chunks_exact_mut(8) {
                let p = if r.next().is_multiple_of(8) {
                    0
                } else {
                    heap_base + (r.next() % (1 << 24)) * 16
                };
                w.copy_from_slice(&p.to_le_bytes());
            }
        }
        55..=74 => {
            // ASCII strings.
            let mut i = 0;
            while i < page.len() {
                let w = WORDS[(r.next() % WORDS.len() as u64) as usize].as_bytes();
                let n = w.len().min(page.len() - i);
                page[i..i + n].copy_from_slice(&w[..n]);
                i += n;
                if i < page.len() {
                    page[i] = if r.next().is_multiple_of(5) {
                        b'\n'
                    } else {
                        b' '
                    };
                    i += 1;
                }
            }
        }
        75..=84 => {
            // Float arrays (numpy-like), smooth values.
            let mut x = (r.next() % 1000) as f64;
            for w in page.chunks_exact_mut(8) {
                x += ((r.next() % 200) as f64 - 100.0) / 1000.0;
                w.copy_from_slice(&x.to_le_bytes());
            }
        }
        85..=94 => page.fill(0),
        _ => {
            for w in page.chunks_exact_mut(8) {
                w.copy_from_slice(&r.next().to_le_bytes());
            }
        }
    }
}

/// Fill `buf` with synthetic memory of `kind`; `seed` makes it reproducible. Runs in
/// parallel, one 4 KiB page at a time.
pub fn fill(buf: &mut [u8], kind: SynthKind, seed: u64) {
    buf.par_chunks_mut(1 << 20)
        .enumerate()
        .for_each(|(block, b)| {
            let mut r = Rng((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(block as u64 + 1) | 1);
            for page in b.chunks_mut(4096) {
                match kind {
                    SynthKind::Zeros => page.fill(0),
                    SynthKind::Random => {
                        for w in page.chunks_mut(8) {
                            let v = r.next().to_le_bytes();
                            w.copy_from_slice(&v[..w.len()]);
                        }
                    }
                    SynthKind::PythonHeap => {
                        if page.len() == 4096 {
                            heap_page(page, &mut r)
                        } else {
                            page.fill(0)
                        }
                    }
                }
            }
        });
}

/// Change `fraction` of the 4 KiB pages of `buf` (runs of `run` consecutive pages at
/// random places), writing content of the same kind. Returns the changed byte ranges
/// (offset, length).
pub fn mutate_pages(
    buf: &mut [u8],
    kind: SynthKind,
    fraction: f64,
    run: usize,
    seed: u64,
) -> Vec<(usize, usize)> {
    let pages = buf.len() / 4096;
    let run = run.max(1);
    let runs = ((pages as f64 * fraction) / run as f64).round() as usize;
    let mut r = Rng(seed | 1);
    let mut changed = Vec::with_capacity(runs);
    let mut scratch = vec![0u8; 4096 * run];
    for k in 0..runs {
        if pages < run {
            break;
        }
        let start = (r.next() as usize % (pages - run + 1)) * 4096;
        let kind = if kind == SynthKind::Zeros {
            SynthKind::Random
        } else {
            kind
        };
        fill(&mut scratch, kind, seed.wrapping_add(k as u64 * 7919));
        buf[start..start + scratch.len()].copy_from_slice(&scratch);
        changed.push((start, scratch.len()));
    }
    changed
}
