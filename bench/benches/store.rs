//! Criterion benchmarks of the store: memory-image ingest (first and second generation) and
//! reassembly, on 64 MiB synthetic images. `cairn-bench store` prints the full-size table.

use std::hint::black_box;

use cairn_bench::synth::{fill, mutate_pages, SynthKind};
use cairn_store::{GenerationInfo, InitOptions, Store, StreamRef};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: usize = 64 << 20;

fn ingest(store: &Store, buf: &[u8]) -> StreamRef {
    let mut w = store.writer().expect("writer");
    let m = w
        .put_memory(buf.len() as u64, &|off, out: &mut [u8]| {
            let o = off as usize;
            out.copy_from_slice(&buf[o..o + out.len()]);
            Ok(())
        })
        .expect("put_memory");
    let root = w.put_tree(vec![("mem".into(), m.clone())]).expect("tree");
    let stats = w.finish().expect("finish");
    let info = GenerationInfo {
        kind: "bench".into(),
        stats,
        ..Default::default()
    };
    store.commit("bench", &root, info).expect("commit");
    m
}

fn bench_store(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SIZE as u64));
    for kind in [SynthKind::Random, SynthKind::Zeros, SynthKind::PythonHeap] {
        let mut buf = vec![0u8; SIZE];
        fill(&mut buf, kind, 1);
        g.bench_function(format!("ingest_gen1/{}", kind.name()), |b| {
            b.iter_with_setup(
                || tempfile::tempdir().expect("tempdir"),
                |dir| {
                    let store = Store::init(dir.path(), InitOptions::default()).expect("init");
                    black_box(ingest(&store, &buf));
                },
            )
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::init(dir.path(), InitOptions::default()).expect("init");
        ingest(&store, &buf);
        let mut changed = buf.clone();
        mutate_pages(&mut changed, kind, 0.01, 16, 2);
        g.bench_function(format!("ingest_gen2_1pct/{}", kind.name()), |b| {
            b.iter(|| black_box(ingest(&store, &changed)))
        });
        let m = ingest(&store, &changed);
        let (gen, _) = store
            .latest_consistent_at("bench", cairn_store::CheckLevel::Structure)
            .expect("latest");
        let reader = store.reader(gen.id).expect("reader");
        let mut out = vec![1u8; SIZE];
        g.bench_function(format!("reassemble/{}", kind.name()), |b| {
            b.iter(|| reader.read_at(&m, 0, &mut out).expect("read"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
