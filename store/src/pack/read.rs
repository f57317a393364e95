//! Reading one chunk out of a pack file: its payload at its offset, decoded and verified.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::error::StoreError;
use crate::pack::codec::decode_to;
use crate::pack::format::{check_hash, Codec, PackEntry};

/// Read the chunk `e` of pack file `f` straight into `out` (exactly `raw_len` bytes) and
/// verify it.
pub fn read_into(f: &File, e: &PackEntry, out: &mut [u8]) -> Result<(), StoreError> {
    let eof = |err: std::io::Error| {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            StoreError::Corrupt(format!("pack is truncated (chunk {})", e.id))
        } else {
            StoreError::Io {
                context: format!("reading chunk {}", e.id),
                source: err,
            }
        }
    };
    if out.len() != e.raw_len as usize {
        return Err(StoreError::Corrupt(format!(
            "chunk {} has {} bytes, expected {}",
            e.id,
            e.raw_len,
            out.len()
        )));
    }
    match e.codec {
        Codec::Raw => {
            if e.stored_len != e.raw_len {
                return Err(StoreError::Corrupt(format!(
                    "chunk {}: bad raw length",
                    e.id
                )));
            }
            f.read_exact_at(out, e.offset).map_err(eof)?;
        }
        Codec::Zstd | Codec::Lz4 => {
            // The compressed payload goes through a per-thread buffer that only grows, so
            // it is neither allocated nor zero-filled per chunk.
            let n = PAYLOAD.with(|pb| {
                let mut pb = pb.borrow_mut();
                let sl = e.stored_len as usize;
                if pb.len() < sl {
                    pb.resize(sl, 0);
                }
                let payload = &mut pb[..sl];
                f.read_exact_at(payload, e.offset).map_err(eof)?;
                decode_to(e.codec, payload, out).map_err(|err| {
                    StoreError::Corrupt(format!("chunk {}: cannot decompress: {err}", e.id))
                })
            })?;
            if n != out.len() {
                return Err(StoreError::Corrupt(format!("chunk {}: short chunk", e.id)));
            }
        }
    }
    check_hash(e, out)
}

thread_local! {
    static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
