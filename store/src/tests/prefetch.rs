//! Prefetching many small streams at once.

use std::sync::Mutex;

use crate::node::StreamRef;
use crate::store::Store;
use crate::tests::random_bytes;

fn read_whole(r: &crate::read::generation::GenerationReader, s: &StreamRef) -> Vec<u8> {
    let out = Mutex::new(vec![0u8; s.len as usize]);
    r.for_each_chunk(s, &|off, d| {
        if let Some(d) = d {
            out.lock().unwrap()[off as usize..off as usize + d.len()].copy_from_slice(d);
        }
        Ok(())
    })
    .unwrap();
    out.into_inner().unwrap()
}

/// After a prefetch of many one-page streams (and a larger and an all-zero one among them)
/// every stream reads back exactly; a second prefetch of the same streams changes nothing.
#[test]
fn prefetched_streams_read_back_exactly() {
    use crate::config::InitOptions;
    use crate::generation::GenerationInfo;
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
    let mut datas: Vec<Vec<u8>> = (0..300).map(|i| random_bytes(4096, 7 + i)).collect();
    datas.push(random_bytes(1 << 20, 99));
    datas.push(vec![0u8; 8192]);
    let mut w = store.writer().unwrap();
    let streams: Vec<StreamRef> = datas
        .iter()
        .map(|data| {
            w.put_memory(data.len() as u64, &|off, buf: &mut [u8]| {
                buf.copy_from_slice(&data[off as usize..off as usize + buf.len()]);
                Ok(())
            })
            .unwrap()
        })
        .collect();
    let entries = streams
        .iter()
        .enumerate()
        .map(|(i, s)| (i.to_string(), s.clone()))
        .collect();
    let root = w.put_tree(entries).unwrap();
    let stats = w.finish().unwrap();
    let info = GenerationInfo {
        kind: "t".into(),
        stats,
        ..Default::default()
    };
    let g = store.commit("j", &root, info).unwrap();
    let r = store.reader(g).unwrap();
    r.prefetch(&streams).unwrap();
    r.prefetch(&streams).unwrap();
    for (s, data) in streams.iter().zip(&datas) {
        assert!(read_whole(&r, s) == *data);
    }
}
