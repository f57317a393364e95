//! Retention and garbage collection for the cairn store (see docs/gc.md).
//!
//! * [`retention`]: which generations a [`Policy`] keeps, and why (pure, table-tested).
//! * [`prune`]: applies a policy to a store — removes generation manifests, never the newest
//!   consistent generation of a job nor its fallback.
//! * [`sweep`]: garbage collection — mark from the remaining manifests, condemn packs with no
//!   live chunk, repack mostly dead ones, delete condemned packs after a grace period.
//!
//! Neither takes a lock that stops checkpoints; the protocol that makes this safe is in
//! docs/gc.md.

pub mod error;
pub mod prune;
pub mod retention;
pub mod sweep;

pub use error::GcError;
pub use prune::{
    explain, plan, prune, prune_after_checkpoint, AfterCheckpoint, PruneOptions, PruneReport,
};
pub use retention::{apply, Candidate, Decision, Policy, Reason};
pub use sweep::{sweep, SweepOptions, SweepReport, DEFAULT_GRACE, GRACE_ENV};
