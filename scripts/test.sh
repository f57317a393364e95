#!/usr/bin/env bash
# The test command (README.md): set-up, formatting, lints, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo build --workspace --release -q
cargo test --workspace --release
