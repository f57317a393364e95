//! Reading single chunks through a [`StoreDir`]: locating them (the index, this handle's
//! hints, packs not indexed yet), reading and verifying them, and following chunks gc moved.

use std::sync::Arc;

use crate::dir::StoreDir;
use crate::error::StoreError;
use crate::id::ChunkId;
use crate::index::ChunkLoc;
use crate::node::{decode_tree, StreamKind, StreamNode, StreamRef};

impl StoreDir {
    /// A stream node, decoded: from this handle's cache when it has it (the id is the hash of
    /// the node's bytes, so a cached node is the node), else read, verified and remembered.
    /// Says nothing about whether the node's chunk is still present in the store.
    pub(crate) fn read_node(&self, id: &ChunkId) -> Result<Arc<StreamNode>, StoreError> {
        if let Some(n) = self.known().node(id) {
            return Ok(n);
        }
        let n = Arc::new(StreamNode::decode(id, &self.read_chunk(id)?)?);
        self.known().add_node(*id, n.clone());
        Ok(n)
    }

    /// Where a chunk is, consulting packs not yet indexed on a miss.
    pub(crate) fn locate(&self, id: &ChunkId) -> Result<ChunkLoc, StoreError> {
        let mut found = self.index().lookup(id)?;
        if found.is_none() && self.sync_new_packs()? > 0 {
            found = self.index().lookup(id)?;
        }
        let l = found.ok_or(StoreError::MissingChunk(*id))?;
        self.known().add(&l.0, &l.1);
        Ok(l)
    }

    /// Locations of many chunks (one index transaction), consulting unindexed packs on a miss.
    ///
    /// Locations this handle remembers (crate::known; e.g. from the structure check that
    /// precedes a restore) are used without a lookup: reads verify every chunk and look a
    /// chunk up again when its read fails, so a stale hint costs a retry, never a wrong byte.
    pub(crate) fn locate_many(&self, ids: &[ChunkId]) -> Result<Vec<ChunkLoc>, StoreError> {
        let mut found: Vec<Option<ChunkLoc>> = {
            let known = self.known();
            ids.iter()
                .map(|id| known.loc(id).map(|(p, e)| (p.to_string(), e.clone())))
                .collect()
        };
        let ask: Vec<ChunkId> = ids
            .iter()
            .zip(&found)
            .filter(|(_, l)| l.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !ask.is_empty() {
            let mut got = self.index().lookup_many(&ask)?;
            if got.iter().any(|l| l.is_none()) && self.sync_new_packs()? > 0 {
                got = self.index().lookup_many(&ask)?;
            }
            let mut known = self.known();
            for (pack, e) in got.iter().flatten() {
                known.add(pack, e);
            }
            let mut got = got.into_iter();
            for slot in found.iter_mut().filter(|l| l.is_none()) {
                *slot = got.next().flatten();
            }
        }
        ids.iter()
            .zip(found)
            .map(|(id, l)| l.ok_or(StoreError::MissingChunk(*id)))
            .collect()
    }

    /// Read a located chunk straight into `out` (its exact length) and verify it. When the
    /// read fails, the chunk is looked up again and read from its new location, if it has
    /// one: gc may have moved it into another pack and deleted the old one since `loc` was
    /// looked up (docs/gc.md, "Readers"). Only then is the first error reported.
    pub(crate) fn read_loc_into(&self, loc: &ChunkLoc, out: &mut [u8]) -> Result<(), StoreError> {
        let first = match self.read_loc_once(loc, out) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let mut cur = loc.clone();
        // Each retry follows one move; more than a few moves during one read means the
        // location keeps changing for another reason.
        for _ in 0..3 {
            match self.relocate(&cur) {
                Some(next) => {
                    cur = next;
                    if self.read_loc_once(&cur, out).is_ok() {
                        return Ok(());
                    }
                }
                None => break,
            }
        }
        Err(first)
    }

    /// Read a located chunk into `out` and verify it, once (no re-lookup when it fails).
    pub(crate) fn read_loc_once(&self, loc: &ChunkLoc, out: &mut [u8]) -> Result<(), StoreError> {
        let (pack, e) = loc;
        let f = self.pack_file(pack)?;
        crate::pack::read_into(&f, e, out).map_err(|err| {
            // A handle on a pack that was replaced or went stale (NFS) must not be reused.
            self.forget_pack_file(pack);
            match err {
                StoreError::Corrupt(m) => StoreError::Corrupt(format!("pack {pack}: {m}")),
                other => other,
            }
        })
    }

    /// Read one chunk and verify its hash. The zero id must not be passed.
    pub(crate) fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>, StoreError> {
        // A location this handle remembers is tried first (the read verifies the hash); any
        // failure falls back to the index.
        let hint = self
            .known()
            .loc(id)
            .map(|(p, e)| (p.to_string(), e.clone()));
        if let Some(loc) = hint {
            let mut buf = vec![0u8; loc.1.raw_len as usize];
            if self.read_loc_once(&loc, &mut buf).is_ok() {
                return Ok(buf);
            }
        }
        let loc = self.locate(id)?;
        let mut buf = vec![0u8; loc.1.raw_len as usize];
        self.read_loc_into(&loc, &mut buf)?;
        Ok(buf)
    }

    /// Where a chunk is now, when that differs from `loc`: after a failed read at `loc`, the
    /// chunk may have been moved by gc (copied into a new pack, index row moved, old pack
    /// deleted; docs/gc.md, "Readers"). `None` when the index still names `loc` or knows no
    /// location: then the failure is real damage.
    pub(crate) fn relocate(&self, loc: &ChunkLoc) -> Option<ChunkLoc> {
        let id = loc.1.id;
        let now = match self.index().lookup(&id) {
            Ok(Some(l)) => Some(l),
            // A pack sealed but not yet indexed (a copy of a gc killed before indexing it).
            Ok(None) => match self.sync_new_packs() {
                Ok(n) if n > 0 => self.index().lookup(&id).ok().flatten(),
                _ => None,
            },
            Err(_) => None,
        };
        now.filter(|l| l != loc)
    }
}

/// Read and decode a tree node.
pub(crate) fn read_tree(
    store: &StoreDir,
    tree: &StreamRef,
) -> Result<Vec<(String, StreamRef)>, StoreError> {
    if tree.kind != StreamKind::Tree {
        return Err(StoreError::InvalidArgument("not a tree".into()));
    }
    let entries = decode_tree(&tree.root, &store.read_chunk(&tree.root)?)?;
    if entries.len() as u64 != tree.len {
        return Err(StoreError::Corrupt(format!(
            "tree {} has {} entries, its reference says {}",
            tree.root,
            entries.len(),
            tree.len
        )));
    }
    Ok(entries)
}
