//! Extent reads without O_DIRECT descriptors.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::store::Store;
use crate::tests::random_bytes;

/// Without O_DIRECT descriptors (what a file system that refuses O_DIRECT gives) the
/// extents of packs that are not cached are read through the page cache, same bytes.
#[test]
fn without_direct_descriptors_extents_are_read_buffered() {
    use crate::config::InitOptions;
    use crate::generation::GenerationInfo;
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let opts = InitOptions {
        pack_target_size: 1 << 20,
        ..Default::default()
    };
    let store = Store::init(&dir.path().join("s"), opts).unwrap();
    let data = random_bytes(4 << 20, 0x1234_5678);
    let mut w = store.writer().unwrap();
    let m = w
        .put_memory(data.len() as u64, &|off, buf: &mut [u8]| {
            buf.copy_from_slice(&data[off as usize..off as usize + buf.len()]);
            Ok(())
        })
        .unwrap();
    let root = w.put_tree(vec![("m".into(), m.clone())]).unwrap();
    let stats = w.finish().unwrap();
    let info = GenerationInfo {
        kind: "t".into(),
        stats,
        ..Default::default()
    };
    let g = store.commit("j", &root, info).unwrap();
    // Direct first: the buffered reads leave the packs cached, and cached extents are read
    // through the cache.
    for direct in [true, false] {
        let r = store.reader(g).unwrap();
        r.try_direct.store(direct, Ordering::Relaxed);
        let out = Mutex::new(vec![0u8; data.len()]);
        r.for_each_chunk(&m, &|off, d| {
            let d = d.expect("no zero chunk");
            out.lock().unwrap()[off as usize..off as usize + d.len()].copy_from_slice(d);
            Ok(())
        })
        .unwrap();
        assert!(out.into_inner().unwrap() == data);
        let s = r.read_stats();
        assert_eq!(s.chunks, 128);
        if direct {
            // The uncached packs of the disk store are read directly.
            assert!(s.direct_extents > 0, "{s:?}");
        } else {
            assert_eq!(s.direct_extents, 0, "{s:?}");
            assert!(s.buffered_extents >= 4 && s.buffered_extents < 16, "{s:?}");
        }
    }
}
