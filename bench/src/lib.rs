//! Benchmarks of the cairn store and gc (the `cairn-bench` binary, the criterion bench
//! `store`, the examples) and the synthetic memory images they share. Never a dependency of
//! the product.

/// Synthetic memory images.
pub mod synth;
