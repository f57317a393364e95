//! Retention policies, prune and garbage collection of the store.
