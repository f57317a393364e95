#!/usr/bin/env bash
# Incremental checkpoint benchmark (issue 7; results in docs/performance.md).
#
# For every size x data kind x dirty fraction: launches tests/programs/dirtymem under
# `cairn launch`, takes a first checkpoint, then NEXT more, the program rewriting the given
# fraction of its buffer (in random 64 KiB blocks) before each; then restarts the last
# generation. Prints frozen time, total time and bytes written per checkpoint (from the
# agent's log) and the restart time (until the restarted agent runs the program).
#
# Environment: SIZES_MIB (default "1024 4096"), KINDS ("random zeros pyheap"),
# PERMILLE ("1 10 100" = 0.1%, 1%, 10%), NEXT (5), CAIRN (target/release/cairn),
# WORK (a scratch directory on the disk to measure; default a fresh one under /var/tmp).
# Not a test: timings depend on the machine and on what else runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES_MIB=${SIZES_MIB:-"1024 4096"}
KINDS=${KINDS:-"random zeros pyheap"}
PERMILLE=${PERMILLE:-"1 10 100"}
NEXT=${NEXT:-5}
CAIRN=${CAIRN:-target/release/cairn}
WORK=${WORK:-$(mktemp -d /var/tmp/cairn-bench.XXXXXX)}
[ -x "$CAIRN" ] || cargo build --release --quiet
PROG="$WORK/dirtymem"
cc -O2 -Wall -o "$PROG" tests/programs/dirtymem.c

criu_ok=no
if command -v criu >/dev/null 2>&1; then
    v=$(criu --version 2>/dev/null | sed -n 's/^Version: *//p')
    if [ -n "$v" ] && printf '4.1\n%s\n' "$v" | sort -V -C; then criu_ok=yes; fi
fi
if [ "$criu_ok" = yes ]; then
    echo "# criu $v found on PATH, but this script does not drive CRIU yet: no CRIU columns"
else
    echo "# criu >= 4.1 not found on PATH: CRIU comparison skipped"
fi
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), store on $(df -P "$WORK" | awk 'NR==2 {print $1}')"

count() { local n; n=$(grep -c "$2" "$1" 2>/dev/null); echo "${n:-0}"; }
wait_for() { # file needle n
    local end=$((SECONDS + 600))
    while [ "$(count "$1" "$2")" -lt "$3" ]; do
        [ $SECONDS -lt $end ] || { echo "timeout waiting for $2 in $1" >&2; return 1; }
        sleep 0.02
    done
}

printf '%-6s %-7s %-6s %-4s %9s %9s %12s %12s %9s\n' \
    MiB kind dirty ckpt frozen_s total_s written_B changed_B restart_s
for mib in $SIZES_MIB; do for kind in $KINDS; do for pm in $PERMILLE; do
    d="$WORK/run-$mib-$kind-$pm"
    rm -rf "$d"; mkdir -p "$d"
    log="$d/launch.log"
    setsid "$CAIRN" launch --store "$d/store" --job bench -- \
        "$PROG" "$mib" "$pm" $((NEXT + 1)) signal "$kind" >"$d/stdout" 2>"$log" &
    agent=$!
    wait_for "$d/stdout" '^ready' 1
    blocks=$(( mib * 16 * pm / 1000 )); [ "$blocks" -gt 0 ] || blocks=1
    for k in $(seq 0 "$NEXT"); do
        if [ "$k" -gt 0 ]; then
            kill -USR2 "$agent"
            wait_for "$d/stdout" "^round $((k - 1)) " 1
        fi
        kill -USR1 "$agent"
        wait_for "$log" 'checkpoint committed' $((k + 1))
        line=$(grep 'checkpoint committed' "$log" | tail -1)
        frozen=$(sed -n 's/.*frozen \([0-9.]*\)s.*/\1/p' <<<"$line")
        total=$(sed -n 's/.*total \([0-9.]*\)s.*/\1/p' <<<"$line")
        written=$(sed -n 's/.* \([0-9]*\) bytes written.*/\1/p' <<<"$line")
        # Round k-1 rewrote `blocks` blocks, and created (4 blocks), grew-and-moved (60 new
        # blocks) or unmapped the side mapping, by k-1 mod 3.
        side=(4 60 0)
        if [ "$k" -eq 0 ]; then changed=$((mib * 1048576));
        else changed=$(((blocks + ${side[$(((k - 1) % 3))]}) * 65536)); fi
        printf '%-6s %-7s %-6s %-4s %9s %9s %12s %12s %9s\n' \
            "$mib" "$kind" "$(awk "BEGIN {print $pm / 10}")%" "$k" "$frozen" "$total" \
            "$written" "$changed" "-"
    done
    kill -KILL -- -"$agent" 2>/dev/null || true
    wait "$agent" 2>/dev/null || true
    start=$(date +%s.%N)
    setsid "$CAIRN" restart --store "$d/store" --job bench >>"$d/stdout" 2>"$d/restart.log" &
    agent=$!
    wait_for "$d/restart.log" 'running (agent pid' 1
    end=$(date +%s.%N)
    printf '%-6s %-7s %-6s %-4s %9s %9s %12s %12s %9.3f\n' "$mib" "$kind" \
        "$(awk "BEGIN {print $pm / 10}")%" restart - - - - "$(awk "BEGIN {print $end - $start}")"
    kill -KILL -- -"$agent" 2>/dev/null || true
    wait "$agent" 2>/dev/null || true
    rm -rf "$d"
done; done; done
