#!/usr/bin/env bash
# Stops the test cluster started by scripts/slurm/setup.sh.
set -u
dir=${CAIRN_SLURM_DIR:-/tmp/cairn-slurm}
for f in "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid"; do
  [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
done
pkill -x slurmd 2>/dev/null
pkill -x slurmctld 2>/dev/null
pkill -x munged 2>/dev/null
running() {
  for n in slurmd slurmctld munged; do
    pgrep -x "$n" >/dev/null && return 0
  done
  return 1
}
for _ in $(seq 1 50); do
  running || exit 0
  sleep 0.1
done
for n in slurmd slurmctld munged; do
  pkill -9 -x "$n" 2>/dev/null
done
exit 0
