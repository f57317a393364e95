//! What a [`crate::Store`] handle remembers between writer sessions to make the next
//! generation of the same job cheap (docs/incremental.md, "Store-side cache"): chunk
//! locations it wrote or looked up, and decoded stream nodes.
//!
//! Both are hints, never the truth:
//! * a chunk → pack location is *used* only after the pack is checked in the current session
//!   (the writer's dedup: file present and not condemned, once per pack per writer session;
//!   the commit check: file present and long enough, once per pack per commit). Packs are
//!   written once and never modified and their names are never reused, so a location in a
//!   pack that passes these checks is where the chunk is. A location that fails them falls
//!   back to the index;
//! * a stream node is stored by its id, and an id is the BLAKE3 hash of the node's bytes: the
//!   cached node is the node, whether or not its chunk is still present (presence is checked
//!   through its location like any chunk).
//!
//! Memory is bounded: past [`MAX_LOCATIONS`] locations or [`MAX_NODES`] nodes the cache is
//! emptied and fills again from the next lookups.

use std::collections::HashMap;
use std::sync::Arc;

use crate::id::{ChunkId, IdMap};
use crate::node::StreamNode;
use crate::pack::PackEntry;

/// Locations kept at most (about 100 bytes each: 4 M cover 128 GiB of 32 KiB chunks).
pub const MAX_LOCATIONS: usize = 4 << 20;

/// Decoded stream nodes kept at most (about 1.3 KiB each at fan-out 32: 64 Ki nodes cover
/// 64 GiB of memory images).
pub const MAX_NODES: usize = 64 << 10;

/// A remembered location: the pack (shared name) and the chunk's entry in it.
pub type KnownLoc = (Arc<str>, PackEntry);

/// The cache of one store handle (behind a mutex in the handle).
#[derive(Default)]
pub(crate) struct Known {
    locs: IdMap<KnownLoc>,
    packs: HashMap<String, Arc<str>>,
    nodes: IdMap<Arc<StreamNode>>,
}

impl Known {
    fn pack_name(&mut self, pack: &str) -> Arc<str> {
        if let Some(p) = self.packs.get(pack) {
            return p.clone();
        }
        let p: Arc<str> = Arc::from(pack);
        self.packs.insert(pack.to_string(), p.clone());
        p
    }

    fn make_room(&mut self, more: usize) {
        if self.locs.len() + more > MAX_LOCATIONS {
            self.locs.clear();
            self.packs.clear();
        }
    }

    /// Remember where the chunks of `entries` are: in sealed pack `pack`.
    pub fn add_pack(&mut self, pack: &str, entries: &[PackEntry]) {
        self.make_room(entries.len());
        let p = self.pack_name(pack);
        for e in entries {
            self.locs.insert(e.id, (p.clone(), e.clone()));
        }
    }

    /// Remember one looked-up location.
    pub fn add(&mut self, pack: &str, e: &PackEntry) {
        self.make_room(1);
        let p = self.pack_name(pack);
        self.locs.insert(e.id, (p, e.clone()));
    }

    /// The remembered location of `id`, if any (a hint: see the module documentation).
    pub fn loc(&self, id: &ChunkId) -> Option<&KnownLoc> {
        self.locs.get(id)
    }

    /// Forget every location in `pack` (it failed a check).
    pub fn forget_pack(&mut self, pack: &str) {
        self.locs.retain(|_, (p, _)| &**p != pack);
        self.packs.remove(pack);
    }

    /// A decoded node by id.
    pub fn node(&self, id: &ChunkId) -> Option<Arc<StreamNode>> {
        self.nodes.get(id).cloned()
    }

    /// Remember a node whose id was computed from (or verified against) its bytes.
    pub fn add_node(&mut self, id: ChunkId, node: Arc<StreamNode>) {
        if self.nodes.len() >= MAX_NODES {
            self.nodes.clear();
        }
        self.nodes.insert(id, node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::Codec;

    fn entry(n: u8) -> PackEntry {
        PackEntry {
            id: ChunkId::of(&[n]),
            offset: u64::from(n) * 100,
            stored_len: 10,
            raw_len: 10,
            codec: Codec::Raw,
        }
    }

    #[test]
    fn locations_are_remembered_per_pack_and_forgotten_with_it() {
        let mut k = Known::default();
        k.add_pack("a", &[entry(1), entry(2)]);
        k.add("b", &entry(3));
        assert_eq!(k.loc(&entry(1).id).map(|l| &*l.0), Some("a"));
        assert_eq!(k.loc(&entry(3).id).map(|l| l.1.offset), Some(300));
        k.forget_pack("a");
        assert!(k.loc(&entry(1).id).is_none());
        assert!(k.loc(&entry(2).id).is_none());
        assert!(k.loc(&entry(3).id).is_some());
    }
}
