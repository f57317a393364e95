#!/usr/bin/env bash
# The test command (README.md): set-up, formatting, lints, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "test.sh: formatting (cargo fmt --check)"
cargo fmt --all -- --check
echo "test.sh: lints (cargo clippy -D warnings; the first build takes a few minutes)"
cargo clippy --workspace --all-targets -- -D warnings
echo "test.sh: release build"
cargo build --workspace --release

# The Slurm tests (tests/e2e/slurm.rs) run against a real one-node cluster on localhost.
if [ "$(id -u)" -eq 0 ]; then
  trap 'bash scripts/slurm/stop.sh' EXIT
  bash scripts/slurm/setup.sh
  export CAIRN_SLURM_TESTS=1
else
  echo "test.sh: not root, so no Slurm cluster: tests/e2e/slurm.rs will say it did not run" >&2
fi

# Three tests at a time: most end-to-end tests wait on their programs far more than they
# compute, and two at a time (one per core) made the suite longer than CI's half hour.
cargo test --workspace --release -- --test-threads=3
