//! The cairn checkpoint store: content-addressed chunks in pack files, Merkle manifests,
//! generations, and a SQLite index. See docs/store-format.md.
