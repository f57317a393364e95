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
for _ in $(seq 1 50); do
  pgrep -x 'slurmd|slurmctld|munged' >/dev/null || exit 0
  sleep 0.1
done
pkill -9 -x 'slurmd|slurmctld|munged' 2>/dev/null
exit 0
