#!/usr/bin/env bash
# The demo (README.md): sets up the machine, builds cairn, then runs examples/primes.c under
# `cairn launch`, checkpoints it, kills the whole job with SIGKILL, restarts it from the store
# and checks that the output is identical to an uninterrupted run.
# Usage: bash scripts/demo.sh [STORE_DIR]   (default ./demo-store)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

STORE="${1:-./demo-store}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cairn-demo.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "== building cairn (release; the first build takes a few minutes, cargo shows its progress)"
cargo build --release
CAIRN="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn"
cc -O2 -o "$WORK/primes" examples/primes.c

echo "== native run of examples/primes.c (reference output)"
"$WORK/primes" 60 40 > "$WORK/native.out"
tail -n 1 "$WORK/native.out"

JOB="demo-$(date +%s)"
echo "== cairn launch --store $STORE --job $JOB -- primes 60 40"
# setsid: the agent and the program get a process group of their own, so that one
# `kill -9 -PGID` below kills the whole job, as a crashed node would.
setsid "$CAIRN" launch --store "$STORE" --job "$JOB" -- "$WORK/primes" 60 40 > "$WORK/cairn.out" &
AGENT=$!
sleep 1
echo "== checkpoint: kill -USR1 (the agent)"
kill -USR1 "$AGENT"
sleep 1
echo "== kill -9 the whole job (agent and program)"
kill -9 -- "-$AGENT" 2>/dev/null || true
wait "$AGENT" 2>/dev/null || true
echo "   output so far: $(wc -l < "$WORK/cairn.out") lines"

echo "== cairn restart --store $STORE --job $JOB"
"$CAIRN" restart --store "$STORE" --job "$JOB"

echo "== comparing with the native run"
if cmp -s "$WORK/native.out" "$WORK/cairn.out"; then
  echo "identical: the restarted program continued exactly where the checkpoint left it"
else
  echo "DIFFERENT output after restart:" >&2
  diff "$WORK/native.out" "$WORK/cairn.out" | head -20 >&2
  exit 1
fi
