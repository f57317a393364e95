//! Benchmarks of cairn (the `cairn-bench` binary for the store and gc, the criterion bench
//! `store`, the examples: store components, a checkpoint/restore cycle, IPC) and the synthetic
//! memory images they share. Never a dependency of the product.

/// Synthetic memory images.
pub mod synth;
