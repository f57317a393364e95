//! Walking what a generation reaches, and checking that it is all present and sound.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::dir::StoreDir;
use crate::error::StoreError;
use crate::generation::{Generation, GenerationId, Skipped};
use crate::id::{ChunkId, IdSet};
use crate::index::ChunkLoc;
use crate::node::{StreamKind, StreamNode, StreamRef};
use crate::pack::PACK_SUFFIX;
use crate::read::chunk::read_tree;

/// Everything a root reaches.
#[derive(Default, Debug)]
pub struct Reach {
    /// Interior chunks (tree and stream nodes), each read and verified during the walk.
    pub nodes: IdSet,
    /// Non-zero data chunks.
    pub leaves: IdSet,
    /// What could not be read, one line each.
    pub problems: Vec<String>,
    /// Stream nodes taken from the store handle's cache instead of being read (only
    /// [`crate::Store::check_structure`] does that): their presence is checked like data chunks'.
    pub unread_nodes: Vec<ChunkId>,
}

impl Reach {
    /// Every chunk reached (nodes and leaves).
    pub fn all_chunks(&self) -> impl Iterator<Item = &ChunkId> {
        self.nodes.iter().chain(self.leaves.iter())
    }
}

/// How thoroughly to check a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckLevel {
    /// Nodes read and verified; data chunks only located (index, pack present, in bounds).
    Structure,
    /// Every data chunk read and its hash verified as well.
    Data,
}

impl StoreDir {
    /// Walk everything `root` reaches. Nodes are read and verified; problems are collected,
    /// not returned as errors, so one damaged subtree does not hide the others.
    pub(crate) fn reach(&self, root: &StreamRef) -> Reach {
        let mut r = Reach::default();
        self.walk(root, &mut r, false);
        r
    }

    /// Like [`StoreDir::reach`], but stream nodes this handle has cached are not read again
    /// (listed in [`Reach::unread_nodes`] instead).
    fn reach_cached(&self, root: &StreamRef) -> Reach {
        let mut r = Reach::default();
        self.walk(root, &mut r, true);
        r
    }

    fn walk(&self, s: &StreamRef, r: &mut Reach, cached: bool) {
        match s.kind {
            StreamKind::Tree => {
                if !r.nodes.insert(s.root) {
                    return;
                }
                match read_tree(self, s) {
                    Ok(entries) => {
                        for (_, child) in entries {
                            self.walk(&child, r, cached);
                        }
                    }
                    Err(e) => r.problems.push(format!("tree {}: {e}", s.root)),
                }
            }
            StreamKind::Memory | StreamKind::Bytes => {
                self.walk_node(&s.root, None, s.len, r, cached);
            }
        }
    }

    fn walk_node(&self, id: &ChunkId, level: Option<u8>, len: u64, r: &mut Reach, cached: bool) {
        if id.is_zero() || !r.nodes.insert(*id) {
            return;
        }
        let hit = if cached { self.known().node(id) } else { None };
        let node = match hit {
            Some(n) => {
                r.unread_nodes.push(*id);
                n
            }
            None => match self.read_chunk(id).and_then(|b| StreamNode::decode(id, &b)) {
                Ok(n) => {
                    let n = Arc::new(n);
                    self.known().add_node(*id, n.clone());
                    n
                }
                Err(e) => {
                    r.problems.push(e.to_string());
                    return;
                }
            },
        };
        if level.is_some_and(|l| l != node.level) || node.total_len() != len {
            r.problems
                .push(format!("stream node {id} does not match its parent"));
            return;
        }
        for e in &node.entries {
            if node.level == 1 {
                if !e.id.is_zero() {
                    r.leaves.insert(e.id);
                }
            } else {
                self.walk_node(&e.id, Some(node.level - 1), e.len, r, cached);
            }
        }
    }

    /// Problems with what `root` reaches, at the structure level: unreadable nodes, data
    /// chunks that are not indexed, whose pack is missing, or that lie beyond its end.
    ///
    /// Nodes and locations this handle has cached (crate::known) are used as hints: a chunk
    /// whose cached location lies inside a pack file that is present and long enough is
    /// present (packs are never modified and their names never reused); every other chunk is
    /// looked up in the index as before.
    pub(crate) fn check_structure(&self, root: &StreamRef) -> Result<Vec<String>, StoreError> {
        let reach = self.reach_cached(root);
        let mut problems = reach.problems;
        let ids: Vec<ChunkId> = reach.leaves.into_iter().chain(reach.unread_nodes).collect();
        let mut sizes: HashMap<Arc<str>, Option<u64>> = HashMap::new();
        let mut rest = Vec::new();
        {
            let known = self.known();
            for id in ids {
                let ok = known.loc(&id).is_some_and(|(pack, e)| {
                    let size = *sizes.entry(pack.clone()).or_insert_with(|| {
                        std::fs::metadata(self.pack_path(pack))
                            .ok()
                            .map(|m| m.len())
                    });
                    size.is_some_and(|s| e.offset + u64::from(e.stored_len) <= s)
                });
                if !ok {
                    rest.push(id);
                }
            }
        }
        for (pack, size) in &sizes {
            if size.is_none() {
                self.known().forget_pack(pack);
            }
        }
        let locs = self.lookup_leaves(&rest)?;
        problems.extend(self.check_locations(&rest, locs)?);
        Ok(problems)
    }

    /// Problems with the locations `locs` of the chunks `ids` (looked up earlier): not
    /// indexed, pack missing, or beyond its end. A chunk that fails is looked up again and
    /// checked at its new location: gc may have moved it and deleted the old pack since the
    /// lookup (docs/gc.md, "Readers"), which is not damage.
    pub(crate) fn check_locations(
        &self,
        ids: &[ChunkId],
        locs: Vec<Option<ChunkLoc>>,
    ) -> Result<Vec<String>, StoreError> {
        let mut sizes: HashMap<String, Option<u64>> = HashMap::new();
        let mut failing: Vec<(ChunkId, Option<ChunkLoc>, String)> = Vec::new();
        for (id, loc) in ids.iter().zip(locs) {
            if let Some(p) = self.location_problem(id, loc.as_ref(), &mut sizes) {
                failing.push((*id, loc, p));
            }
        }
        for _ in 0..3 {
            if failing.is_empty() {
                break;
            }
            // Fresh sizes: packs may have appeared or gone since.
            sizes.clear();
            let again: Vec<ChunkId> = failing.iter().map(|f| f.0).collect();
            let fresh = self.lookup_leaves(&again)?;
            let mut moved = false;
            let mut still = Vec::new();
            for ((id, old, problem), loc) in failing.into_iter().zip(fresh) {
                if loc == old {
                    still.push((id, old, problem));
                    continue;
                }
                moved = true;
                if let Some(p) = self.location_problem(&id, loc.as_ref(), &mut sizes) {
                    still.push((id, loc, p));
                }
            }
            failing = still;
            if !moved {
                break;
            }
        }
        Ok(failing.into_iter().map(|f| f.2).collect())
    }

    fn location_problem(
        &self,
        id: &ChunkId,
        loc: Option<&ChunkLoc>,
        sizes: &mut HashMap<String, Option<u64>>,
    ) -> Option<String> {
        let Some((pack, e)) = loc else {
            return Some(format!("chunk {id} is missing from the store"));
        };
        let size = *sizes.entry(pack.clone()).or_insert_with(|| {
            let p = self.pack_dir().join(format!("{pack}{PACK_SUFFIX}"));
            std::fs::metadata(p).ok().map(|m| m.len())
        });
        match size {
            None => Some(format!("pack {pack} is missing (chunk {id})")),
            Some(s) if e.offset + u64::from(e.stored_len) > s => {
                Some(format!("pack {pack} is truncated (chunk {id})"))
            }
            Some(_) => None,
        }
    }

    /// Index lookups for many chunks; indexes packs not yet indexed when some are missing.
    pub(crate) fn lookup_leaves(
        &self,
        ids: &[ChunkId],
    ) -> Result<Vec<Option<ChunkLoc>>, StoreError> {
        let mut locs = self.index().lookup_many(ids)?;
        if locs.iter().any(|l| l.is_none()) && self.sync_new_packs()? > 0 {
            locs = self.index().lookup_many(ids)?;
        }
        let mut known = self.known();
        for (pack, e) in locs.iter().flatten() {
            known.add(pack, e);
        }
        Ok(locs)
    }

    /// Check one generation; `Err` carries the first problem found (and how many there were).
    pub(crate) fn check_generation(&self, g: &Generation, level: CheckLevel) -> Result<(), String> {
        let problems = match level {
            CheckLevel::Structure => self.check_structure(&g.root).map_err(|e| e.to_string())?,
            CheckLevel::Data => {
                let reach = self.reach(&g.root);
                let mut problems = reach.problems;
                let leaves: Vec<ChunkId> = reach.leaves.into_iter().collect();
                let locs = self.lookup_leaves(&leaves).map_err(|e| e.to_string())?;
                let bad: Vec<String> = leaves
                    .par_iter()
                    .zip(locs.into_par_iter())
                    .filter_map(|(id, loc)| match loc {
                        None => Some(format!("chunk {id} is missing from the store")),
                        Some(loc) => {
                            let mut buf = vec![0u8; loc.1.raw_len as usize];
                            self.read_loc_into(&loc, &mut buf)
                                .err()
                                .map(|e| e.to_string())
                        }
                    })
                    .collect();
                problems.extend(bad);
                problems
            }
        };
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems[0].clone()),
            n => Err(format!("{} (and {} more problems)", problems[0], n - 1)),
        }
    }

    /// Newest generation of `job` whose chunks are all present and sound (every data chunk
    /// read and verified), plus the reasons newer generations were passed over.
    pub(crate) fn latest_consistent(
        &self,
        job: &str,
    ) -> Result<(Generation, Vec<Skipped>), StoreError> {
        self.latest_consistent_at(job, CheckLevel::Data)
    }

    /// [`StoreDir::latest_consistent`] with a chosen check level.
    pub(crate) fn latest_consistent_at(
        &self,
        job: &str,
        level: CheckLevel,
    ) -> Result<(Generation, Vec<Skipped>), StoreError> {
        let mut skipped = Vec::new();
        let mut seen_job = false;
        let mut lost: Vec<GenerationId> = self
            .lost_generations()?
            .into_iter()
            .filter(|(_, j)| j == job)
            .map(|(id, _)| id)
            .collect();
        for (id, r) in self.scan_generations()?.into_iter().rev() {
            while lost.last().is_some_and(|l| *l > id) {
                if let Some(l) = lost.pop() {
                    seen_job = true;
                    skipped.push(Skipped {
                        id: l,
                        reason: crate::generation::LOST_MANIFEST.to_string(),
                    });
                }
            }
            match r {
                Err(e) => skipped.push(Skipped {
                    id,
                    reason: format!("manifest unreadable (job unknown): {e}"),
                }),
                Ok(g) if g.job != job => {}
                Ok(g) => {
                    seen_job = true;
                    match self.check_generation(&g, level) {
                        Ok(()) => return Ok((g, skipped)),
                        Err(reason) => skipped.push(Skipped { id, reason }),
                    }
                }
            }
        }
        for l in lost.into_iter().rev() {
            seen_job = true;
            skipped.push(Skipped {
                id: l,
                reason: crate::generation::LOST_MANIFEST.to_string(),
            });
        }
        if !seen_job {
            return Err(StoreError::UnknownJob(job.to_string()));
        }
        let reason = skipped
            .iter()
            .map(|s| format!("generation {}: {}", s.id, s.reason))
            .collect::<Vec<_>>()
            .join("; ");
        Err(StoreError::NoConsistentGeneration {
            job: job.to_string(),
            reason,
        })
    }
}
