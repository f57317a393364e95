//! [`PackWriter`]: one pack file being written under a temporary name, then sealed (trailer,
//! fsync, rename) into place.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StoreError};
use crate::fsutil::{fault_point, fsync_dir};
use crate::id::ChunkId;
use crate::pack::format::{encode_trailer, Codec, PackEntry, PACK_MAGIC, PACK_SUFFIX, TMP_PREFIX};
use crate::pack::staging::{direct_io_enabled, DirectWriter, StagingPool};

/// A pack being written under a temporary name.
pub(crate) struct PackWriter {
    name: String,
    tmp_path: PathBuf,
    dir: PathBuf,
    out: File,
    /// Direct I/O path (payloads staged in aligned buffers); `None`: buffered writes to `out`.
    direct: Option<DirectWriter>,
    pos: u64,
    entries: Vec<PackEntry>,
}

impl PackWriter {
    /// Create `DIR/.tmp-NAME.pack` exclusively.
    pub fn create(dir: &Path, name: String) -> Result<PackWriter, StoreError> {
        PackWriter::create_with(dir, name, direct_io_enabled(), StagingPool::default())
    }

    /// Like [`PackWriter::create`], with staging buffers from (and back to) `pool`.
    pub fn create_pooled(
        dir: &Path,
        name: String,
        pool: &StagingPool,
    ) -> Result<PackWriter, StoreError> {
        PackWriter::create_with(dir, name, direct_io_enabled(), pool.clone())
    }

    /// Like [`PackWriter::create`], with direct I/O tried only if `try_direct`.
    fn create_with(
        dir: &Path,
        name: String,
        try_direct: bool,
        pool: StagingPool,
    ) -> Result<PackWriter, StoreError> {
        let tmp_path = dir.join(format!("{TMP_PREFIX}{name}{PACK_SUFFIX}"));
        let f = crate::fsutil::new_file_options()
            .open(&tmp_path)
            .ctx(|| format!("creating pack {}", tmp_path.display()))?;
        let mut out = f;
        // Direct I/O when the file system supports it: a checkpoint is written once and read
        // rarely, so it should neither evict the node's page cache nor wait for its
        // write-back (docs/store-decisions.md). Otherwise payloads go straight to write(2).
        let direct = if try_direct {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&tmp_path)
                .ok()
                .and_then(|d| DirectWriter::start(d, out.try_clone().ok()?, pool).ok())
        } else {
            None
        };
        let mut w = PackWriter {
            name,
            tmp_path,
            dir: dir.to_path_buf(),
            out: out
                .try_clone()
                .ctx(|| "duplicating a pack descriptor".to_string())?,
            direct,
            pos: 0,
            entries: Vec::new(),
        };
        match w.direct.as_mut() {
            Some(d) => d
                .append(PACK_MAGIC)
                .ctx(|| format!("writing pack {}", w.tmp_path.display()))?,
            None => out
                .write_all(PACK_MAGIC)
                .ctx(|| format!("writing pack {}", w.tmp_path.display()))?,
        }
        w.pos = PACK_MAGIC.len() as u64;
        Ok(w)
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.pos
    }

    /// Number of chunks so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Append one chunk payload.
    pub fn append(
        &mut self,
        id: ChunkId,
        payload: &[u8],
        raw_len: usize,
        codec: Codec,
    ) -> Result<(), StoreError> {
        match self.direct.as_mut() {
            Some(d) => d.append(payload),
            None => self.out.write_all(payload),
        }
        .ctx(|| format!("writing pack {}", self.tmp_path.display()))?;
        self.entries.push(PackEntry {
            id,
            offset: self.pos,
            stored_len: payload.len() as u32,
            raw_len: raw_len as u32,
            codec,
        });
        self.pos += payload.len() as u64;
        fault_point("pack-write");
        Ok(())
    }

    /// Write the trailer, fsync, rename to the final name and fsync the directory.
    /// Returns the pack name, its size and its entries. On failure (a full disk, typically
    /// noticed only here with direct I/O) the temporary file is removed.
    pub fn seal(mut self) -> Result<(String, u64, Vec<PackEntry>), StoreError> {
        let r = self.seal_inner();
        if r.is_err() {
            if let Some(mut d) = self.direct.take() {
                let _ = d.finish();
            }
            let _ = std::fs::remove_file(&self.tmp_path);
        }
        r
    }

    fn seal_inner(&mut self) -> Result<(String, u64, Vec<PackEntry>), StoreError> {
        let trailer = encode_trailer(&self.entries, self.pos);
        let ctx = || format!("writing pack {}", self.tmp_path.display());
        match self.direct.take() {
            Some(d) => {
                d.flush(&self.out).ctx(ctx)?;
                self.out.write_all_at(&trailer, self.pos).ctx(ctx)?;
            }
            None => self.out.write_all(&trailer).ctx(ctx)?,
        }
        let size = self.pos + trailer.len() as u64;
        let f = &self.out;
        f.sync_all().ctx(ctx)?;
        fault_point("pack-fsync");
        let final_path = self.dir.join(format!("{}{PACK_SUFFIX}", self.name));
        std::fs::rename(&self.tmp_path, &final_path).ctx(|| {
            format!(
                "renaming {} to {}",
                self.tmp_path.display(),
                final_path.display()
            )
        })?;
        fsync_dir(&self.dir)?;
        fault_point("pack-rename");
        let entries = std::mem::take(&mut self.entries);
        Ok((self.name.clone(), size, entries))
    }

    /// Remove the temporary file (writer abandoned).
    pub fn discard(mut self) {
        if let Some(mut d) = self.direct.take() {
            let _ = d.finish();
        }
        let _ = std::fs::remove_file(&self.tmp_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::format::read_trailer;
    use crate::pack::read::read_into;
    use crate::pack::staging::{DIRECT_BUF, DIRECT_BUFS};

    /// Packs written through the direct-I/O staging buffers and through plain writes are
    /// byte-identical and every chunk reads back, with payloads that straddle buffer ends.
    #[test]
    fn direct_and_buffered_packs_are_identical() {
        let dir = tempfile::tempdir().unwrap();
        let payloads: Vec<Vec<u8>> = (0..300u32)
            .map(|i| {
                let len = 1 + (i as usize * 7919 + i as usize * i as usize * 31) % 70_000;
                (0..len)
                    .map(|k| (k as u32 ^ i.wrapping_mul(2654435761)) as u8)
                    .collect()
            })
            .collect();
        let mut files = Vec::new();
        for (k, direct) in [true, false].into_iter().enumerate() {
            let mut w = PackWriter::create_with(
                dir.path(),
                format!("p{k}"),
                direct,
                StagingPool::default(),
            )
            .unwrap();
            if !direct {
                assert!(w.direct.is_none());
            }
            for p in &payloads {
                w.append(ChunkId::of(p), p, p.len(), Codec::Raw).unwrap();
            }
            let (name, size, entries) = w.seal().unwrap();
            let path = dir.path().join(format!("{name}{PACK_SUFFIX}"));
            assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
            assert_eq!(read_trailer(&path).unwrap(), entries);
            let f = File::open(&path).unwrap();
            for (e, p) in entries.iter().zip(&payloads) {
                let mut out = vec![0u8; p.len()];
                read_into(&f, e, &mut out).unwrap();
                assert_eq!(&out, p);
            }
            files.push(std::fs::read(&path).unwrap());
        }
        assert!(files[0].len() > 2 * DIRECT_BUF);
        assert_eq!(files[0], files[1]);
        // Packs sharing a pool reuse buffers that still hold earlier packs' bytes: the
        // second pack (other payloads, other buffer fill levels) must not show any of them.
        let pool = StagingPool::default();
        for k in 0..2 {
            let mut w =
                PackWriter::create_with(dir.path(), format!("pooled{k}"), true, pool.clone())
                    .unwrap();
            let ps: Vec<&Vec<u8>> = payloads.iter().skip(k * 7).collect();
            for p in &ps {
                w.append(ChunkId::of(p), p, p.len(), Codec::Raw).unwrap();
            }
            let (name, _, entries) = w.seal().unwrap();
            let path = dir.path().join(format!("{name}{PACK_SUFFIX}"));
            let f = File::open(&path).unwrap();
            for (e, p) in entries.iter().zip(&ps) {
                let mut out = vec![0u8; p.len()];
                read_into(&f, e, &mut out).unwrap();
                assert_eq!(&out, *p);
            }
            let mut want = PACK_MAGIC.to_vec();
            for p in &ps {
                want.extend_from_slice(p);
            }
            assert_eq!(&std::fs::read(&path).unwrap()[..want.len()], &want[..]);
            std::fs::remove_file(&path).unwrap();
        }
        assert_eq!(pool.0.lock().unwrap().len(), DIRECT_BUFS);
        // An abandoned direct writer leaves nothing behind.
        let mut w =
            PackWriter::create_with(dir.path(), "gone".into(), true, StagingPool::default())
                .unwrap();
        w.append(ChunkId::of(b"x"), b"x", 1, Codec::Raw).unwrap();
        w.discard();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
