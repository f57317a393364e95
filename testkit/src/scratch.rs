//! Temporary directories for one test.

use std::fs;
use std::path::{Path, PathBuf};

/// A fresh scratch area for one test: a store and working directories.
pub struct Scratch {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// Creates the scratch area.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cairn-e2e")
            .tempdir()
            .expect("tempdir");
        Scratch { dir }
    }

    /// The scratch directory itself.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `name` inside the scratch directory (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The path of the store (created by the first launch).
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A subdirectory, created on demand.
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::create_dir_all(&p).expect("creating a scratch directory");
        p
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}
