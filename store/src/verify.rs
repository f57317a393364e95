//! `verify`: check every pack and every generation, and say which generations a damaged pack
//! affects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::FileExt;

use rayon::prelude::*;
use serde::Serialize;

use crate::dir::StoreDir;
use crate::error::StoreError;
use crate::generation::LOST_MANIFEST;
use crate::id::ChunkId;
use crate::pack::{decode_payload, read_trailer, PACK_SUFFIX, TMP_PREFIX};

/// A pack with a problem and the generations that need a chunk from it.
#[derive(Clone, Debug, Serialize)]
pub struct PackDamage {
    /// Pack name.
    pub pack: String,
    /// What is wrong.
    pub problem: String,
    /// Generations reaching a chunk of this pack that is affected.
    pub generations: Vec<u64>,
}

/// The state of one generation.
#[derive(Clone, Debug, Serialize)]
pub struct GenerationStatus {
    /// Generation id.
    pub id: u64,
    /// Job ("" when the manifest is unreadable).
    pub job: String,
    /// True when every chunk it reaches is present (and, with read_data, sound).
    pub ok: bool,
    /// Problems, one line each (at most 20 listed).
    pub problems: Vec<String>,
}

/// Result of [`crate::Store::verify`].
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// Whether every chunk's bytes were read and hashed.
    pub read_data: bool,
    /// Packs examined.
    pub packs: u64,
    /// Chunks whose bytes were verified (read_data only).
    pub chunks_verified: u64,
    /// Damaged or missing packs.
    pub damaged_packs: Vec<PackDamage>,
    /// Every generation, oldest first.
    pub generations: Vec<GenerationStatus>,
    /// Temporary files of unfinished writers (harmless; removable).
    pub leftovers: Vec<String>,
    /// True when nothing is damaged.
    pub ok: bool,
}

impl StoreDir {
    /// Check the store. Structure level: pack trailers, index vs packs, every generation's
    /// nodes (read and verified) and the presence of every data chunk. With `read_data`,
    /// also every chunk's bytes.
    pub(crate) fn verify(&self, read_data: bool) -> Result<VerifyReport, StoreError> {
        self.sync_new_packs()?;
        let on_disk = self.pack_files_on_disk()?;
        self.verify_listed(on_disk, read_data)
    }

    /// [`crate::Store::verify`] over a pack listing taken earlier. gc may delete packs after the
    /// listing (it removes their index rows first, then the file): a pack whose file is gone
    /// and that the index no longer lists was collected, not damaged (docs/gc.md, "Readers").
    pub(crate) fn verify_listed(
        &self,
        on_disk: Vec<String>,
        read_data: bool,
    ) -> Result<VerifyReport, StoreError> {
        let disk_set: HashSet<&String> = on_disk.iter().collect();
        // pack -> problem
        let mut bad_packs: BTreeMap<String, String> = BTreeMap::new();
        let mut bad_chunks: HashSet<(String, ChunkId)> = HashSet::new();
        let mut chunks_verified = 0u64;
        for name in &on_disk {
            let p = self.pack_dir().join(format!("{name}{PACK_SUFFIX}"));
            match read_trailer(&p) {
                Err(e) => {
                    bad_packs.insert(name.clone(), e.to_string());
                }
                Ok(entries) if read_data => {
                    let f = match self.pack_file(name) {
                        Ok(f) => f,
                        Err(e) => {
                            bad_packs.insert(name.clone(), e.to_string());
                            continue;
                        }
                    };
                    let bad: Vec<String> = entries
                        .par_iter()
                        .filter_map(|e| {
                            let mut buf = vec![0u8; e.stored_len as usize];
                            let r = f
                                .read_exact_at(&mut buf, e.offset)
                                .map_err(|err| err.to_string())
                                .and_then(|_| {
                                    decode_payload(e, buf).map_err(|err| err.to_string())
                                });
                            r.err().map(|m| format!("{}\t{m}", e.id.to_hex()))
                        })
                        .collect();
                    chunks_verified += entries.len() as u64;
                    if let Some(first) = bad.first() {
                        let msg = first.split('\t').nth(1).unwrap_or("").to_string();
                        bad_packs.insert(
                            name.clone(),
                            format!("{} of {} chunks corrupt: {msg}", bad.len(), entries.len()),
                        );
                        for b in &bad {
                            if let Some(id) = b.split('\t').next().and_then(ChunkId::from_hex) {
                                bad_chunks.insert((name.clone(), id));
                            }
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        let indexed: HashSet<String> = self.index().pack_names()?.into_iter().collect();
        for name in &indexed {
            // Not listed but present now: sealed by a writer after the listing.
            if !disk_set.contains(name) && !self.pack_path(name).exists() {
                bad_packs.insert(name.clone(), "missing".into());
            }
        }
        // Collected by gc meanwhile: unindexed (first) and unlinked (then).
        bad_packs.retain(|name, _| self.pack_path(name).exists() || indexed.contains(name));
        let trailer_bad: HashSet<String> = bad_packs
            .iter()
            .filter(|(_, m)| !m.contains("chunks corrupt"))
            .map(|(n, _)| n.clone())
            .collect();

        let mut affected: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        let mut generations = Vec::new();
        let mut loc_cache: HashMap<ChunkId, Option<String>> = HashMap::new();
        let mut readable: HashMap<ChunkId, bool> = HashMap::new();
        for (id, r) in self.scan_generations()? {
            let g = match r {
                Ok(g) => g,
                Err(e) => {
                    generations.push(GenerationStatus {
                        id: id.0,
                        job: String::new(),
                        ok: false,
                        problems: vec![e.to_string()],
                    });
                    continue;
                }
            };
            let reach = self.reach(&g.root);
            let mut problems = reach.problems.clone();
            for cid in reach.all_chunks() {
                let pack = loc_cache
                    .entry(*cid)
                    .or_insert_with(|| self.locate(cid).ok().map(|(p, _)| p))
                    .clone();
                match pack {
                    None => {
                        if reach.leaves.contains(cid) {
                            problems.push(format!("chunk {cid} is missing from the store"));
                        }
                    }
                    Some(p) => {
                        // A pack whose trailer (or header) is damaged still serves its chunks
                        // through the index, as a restart reads them: a chunk there is damaged
                        // only when it cannot be read and verified itself.
                        let damaged = bad_chunks.contains(&(p.clone(), *cid))
                            || (trailer_bad.contains(&p)
                                && !*readable
                                    .entry(*cid)
                                    .or_insert_with(|| self.read_chunk(cid).is_ok()));
                        if damaged {
                            problems.push(format!("chunk {cid} is in damaged pack {p}"));
                            affected.entry(p).or_default().insert(g.id.0);
                        }
                    }
                }
            }
            problems.sort();
            problems.dedup();
            problems.truncate(20);
            generations.push(GenerationStatus {
                id: g.id.0,
                job: g.job.clone(),
                ok: problems.is_empty(),
                problems,
            });
        }
        for (id, job) in self.lost_generations()? {
            generations.push(GenerationStatus {
                id: id.0,
                job,
                ok: false,
                problems: vec![LOST_MANIFEST.to_string()],
            });
        }
        generations.sort_by_key(|g| g.id);
        let damaged_packs: Vec<PackDamage> = bad_packs
            .into_iter()
            .map(|(pack, problem)| PackDamage {
                generations: affected
                    .get(&pack)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default(),
                pack,
                problem,
            })
            .collect();
        let mut leftovers = Vec::new();
        for sub in [crate::dir::PACK_DIR, crate::generation::GEN_DIR] {
            let d = self.path().join(sub);
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if let Some(n) = e.file_name().to_str() {
                        if n.starts_with(TMP_PREFIX) {
                            leftovers.push(format!("{sub}/{n}"));
                        }
                    }
                }
            }
        }
        leftovers.sort();
        let ok = damaged_packs.is_empty() && generations.iter().all(|g| g.ok);
        Ok(VerifyReport {
            read_data,
            packs: on_disk.len() as u64,
            chunks_verified,
            damaged_packs,
            generations,
            leftovers,
            ok,
        })
    }
}
