//! Damage to a store that only a restore can find, shared by the areas that test fallback.

use cairn_testkit::{damage_chunk, files_below};
use std::path::Path;

/// Damages one memory chunk (a whole chunk, or a run of changed pages a later generation
/// stored on its own: whole pages up to the chunk size, which stream nodes, whose sizes are
/// 12 bytes plus a multiple of 8, never are) that generation `which` (0 = oldest) of `job` reaches and no other
/// generation of the job does: the generation's structure (manifest, nodes, chunk locations)
/// stays sound, so only the restore itself, which verifies every chunk as it reads it, can
/// find the damage. Not just any chunk of a new pack: the pre-copy also stores pages that
/// were rewritten before the freeze, and no generation reaches those.
pub fn damage_a_memory_chunk_only_in(store: &Path, job: &str, which: usize) {
    let st = cairn_store::Store::open(store).unwrap();
    let cs = st.config().memory_chunk_size;
    let mut gens = st.generations(Some(job)).unwrap();
    gens.sort_by_key(|g| g.id.0);
    let reached: Vec<_> = gens.iter().map(|g| st.reach(&g.root).leaves).collect();
    let (pack, e) = files_below(&store.join("packs"))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".pack") && !name.starts_with(".tmp-")
        })
        .flat_map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            st.pack_entries(&name)
                .unwrap()
                .into_iter()
                .map(move |e| (p.clone(), e))
        })
        .filter(|(_, e)| {
            e.raw_len % 4096 == 0
                && e.raw_len <= cs
                && reached
                    .iter()
                    .enumerate()
                    .all(|(i, leaves)| leaves.contains(&e.id) == (i == which))
        })
        .max_by_key(|(_, e)| e.stored_len)
        .unwrap_or_else(|| panic!("generation {which} of {job} has no memory chunk of its own"));
    drop(st);
    damage_chunk(&pack, e.offset, e.stored_len);
}
