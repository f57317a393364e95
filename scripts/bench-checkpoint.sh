#!/usr/bin/env bash
# Checkpoint and restart benchmark, against CRIU when it is on PATH (results in
# docs/performance.md). scripts/bench-compare.sh runs the workloads of the checkpoint targets
# (continuous rewriter, scattered pages, after a restart, many mappings) against CRIU and
# DMTCP; this one covers kinds of data and dirty fractions against CRIU.
#
# For every size x data kind x dirty fraction: launches tests/programs/dirtymem under
# `cairn launch`, takes a first checkpoint, then NEXT more, the program rewriting the given
# fraction of its buffer (in random 64 KiB blocks) before each; then restarts the last
# generation. Prints frozen time, total time and bytes written per checkpoint (from the
# agent's log) and the restart time (until the restarted agent runs the program); the
# restarted program then computes one more round and its checksum is kept.
#
# With CRIU >= 4.1 on PATH (and run as root), the same program runs natively and CRIU
# checkpoints it at the same points: `criu dump --shell-job` (full every time: this kernel
# has no soft-dirty bits), then `criu restore --shell-job -d` until the program runs again,
# for the first checkpoint and each following one. Printed: CRIU's dump time (the program is
# frozen for all of it), the dump plus a `sync -f` of the image directory's file system (+sync_s:
# CRIU leaves its images in the page cache, cairn's checkpoints are fsynced when reported; the
# ckpt/s ratio compares equally durable checkpoints), image bytes and restore time, and the ratios cairn/CRIU of checkpoint
# time, frozen time, bytes written and restart time (cairn's restart of the last generation
# against CRIU's restore of the last dump). For random data (the only kind whose contents do
# not depend on the buffer's address) the checksum of the round after the last checkpoint
# must be the same under cairn and CRIU.
#
# Run as root, restarts are measured warm (whatever the page cache still holds; cairn's packs
# are written with O_DIRECT, so they are not in it, while CRIU's images are) and cold (`sync;
# echo 3 > /proc/sys/vm/drop_caches` right before, as after a requeue on another node: nothing
# cached). Without CRIU: columns restart_s / cold_s, one of each. The restarted program's
# checksum must be the same after every restart. Not root: no cold restarts.
#
# Restart times on a VM vary a lot from one try to the next (here: whether the memory the
# restored program needs was freed moments ago or already handed back to the hypervisor, which
# then faults every page in again; docs/performance.md, "The machine"). With CRIU, after both
# tools are done, the restart of cairn's last generation and CRIU's restore of its last dump
# are therefore repeated RESTARTS times each, alternating between the tools, each one SETTLE
# seconds after the previous program's memory was freed, warm and (as root) cold: printed
# are every time, min/median/max, and the ratio of the medians (line "# restarts").
# As root cairn restores large mappings lazily (docs/capture-restore.md, "Lazy restore"):
# the program runs again before its pages are in place. restart_s is the time until it runs
# again (what CRIU's restore -d waits for: its program has every page then); the "# restarts"
# lines add cairn's time until its memory is all in place, and that ratio too.
#
# Environment: SIZES_MIB (default "1024 4096"), KINDS ("random zeros pyheap"),
# PERMILLE ("1 10 100" = 0.1%, 1%, 10%), NEXT (5), RESTARTS (3), SETTLE (2),
# CAIRN (target/release/cairn),
# CRIU (criu; "none" skips the comparison), TIMEOUT (600 s for every wait and CRIU call),
# WORK (a scratch directory on the disk to measure; default a fresh one under /var/tmp).
# Not a test: timings depend on the machine and on what else runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES_MIB=${SIZES_MIB:-"1024 4096"}
KINDS=${KINDS:-"random zeros pyheap"}
PERMILLE=${PERMILLE:-"1 10 100"}
NEXT=${NEXT:-5}
RESTARTS=${RESTARTS:-3}
SETTLE=${SETTLE:-2}
CAIRN=${CAIRN:-target/release/cairn}
CRIU=${CRIU:-criu}
TIMEOUT=${TIMEOUT:-600}
made_work=no
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d /var/tmp/cairn-bench.XXXXXX); made_work=yes; fi
[ -x "$CAIRN" ] || cargo build --release --quiet
PROG="$WORK/dirtymem"
cc -O2 -Wall -o "$PROG" tests/programs/dirtymem.c

criu_ok=no
if [ "$CRIU" != none ] && command -v "$CRIU" >/dev/null 2>&1; then
    v=$("$CRIU" --version 2>/dev/null | sed -n 's/^Version: *//p')
    if [ -n "$v" ] && printf '4.1\n%s\n' "$v" | sort -V -C; then
        if [ "$(id -u)" -eq 0 ]; then criu_ok=yes
        else echo "# criu $v found, but CRIU needs root: CRIU comparison skipped"; fi
    else
        echo "# criu ${v:-of unknown version} is older than 4.1: CRIU comparison skipped"
    fi
else
    echo "# criu >= 4.1 not found on PATH: CRIU comparison skipped"
fi
[ "$criu_ok" = yes ] && echo "# criu $v: $(command -v "$CRIU")"
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), store on $(df -P "$WORK" | awk 'NR==2 {print $1}'), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"

# Processes to kill on exit: process groups of cairn agents and natively run programs.
groups=()
natives=()
cleanup() {
    local g
    for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    for g in "${natives[@]}"; do kill -KILL "$g" 2>/dev/null || true; done
    [ "$made_work" = no ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

count() { local n; n=$(grep -c "$2" "$1" 2>/dev/null); echo "${n:-0}"; }
wait_for() { # file needle n
    local end=$((SECONDS + TIMEOUT))
    while [ "$(count "$1" "$2")" -lt "$3" ]; do
        [ $SECONDS -lt $end ] || { echo "timeout waiting for $2 in $1" >&2; return 1; }
        sleep 0.02
    done
}
now() { date +%s.%N; }
can_drop=no; [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/drop_caches ] && can_drop=yes
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
secs() { awk "BEGIN {printf \"%.3f\", $2 - $1}"; }
ratio() { awk "BEGIN {if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\"}"; }
group_gone() { # pgid: wait until every process of the group has exited (its memory is freed)
    local end=$((SECONDS + TIMEOUT))
    while ps -o pid= -g "$1" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { echo "timeout waiting for process group $1 to end" >&2; return 1; }
        sleep 0.02
    done
}
gone() { # pid: wait until no process has it (CRIU restores the same pid)
    local end=$((SECONDS + TIMEOUT))
    while [ -e "/proc/$1" ]; do
        [ $SECONDS -lt $end ] || { echo "timeout waiting for pid $1 to go" >&2; return 1; }
        sleep 0.02
    done
}

# criu_run MIB KIND PERMILLE DIR: the program natively, dumped and restored by CRIU after the
# first round and each following one. Fills criu_dump[k], criu_bytes[k], criu_restore[k] and
# criu_sum (the checksum of the round after the last dump).
criu_run() {
    local mib=$1 kind=$2 pm=$3 d=$4 k pid t0 img out="$4/criu.out"
    criu_dump=(); criu_durable=(); criu_bytes=(); criu_restore=(); criu_sum=-
    setsid "$PROG" "$mib" "$pm" $((NEXT + 1)) signal "$kind" >"$out" 2>&1 </dev/null &
    pid=$!
    natives+=("$pid")
    wait_for "$out" '^ready' 1
    for k in $(seq 0 "$NEXT"); do
        if [ "$k" -gt 0 ]; then
            kill -USR2 "$pid"
            wait_for "$out" "^round $((k - 1)) " 1
        fi
        img="$d/criu-$k"
        mkdir -p "$img"
        t0=$(now)
        timeout "$TIMEOUT" "$CRIU" dump -t "$pid" -D "$img" --shell-job -o dump.log ||
            { echo "criu dump failed, see $img/dump.log" >&2; return 1; }
        criu_dump[k]=$(secs "$t0" "$(now)")
        # CRIU leaves its images in the page cache; cairn's checkpoint is on disk (fsynced)
        # when it is reported. The same durability for CRIU: its dump plus a sync of the file
        # system holding the images.
        sync -f "$img"
        criu_durable[k]=$(secs "$t0" "$(now)")
        criu_bytes[k]=$(du -sb --exclude='*.log' "$img" | cut -f1)
        { wait "$pid" || true; } 2>/dev/null
        gone "$pid"
        # CRIU refuses to restore a regular file whose size changed since the dump: the
        # repeated restores cut the program's output back to this length.
        criu_out_len=$(stat -c %s "$out")
        sleep "$SETTLE"
        t0=$(now)
        timeout "$TIMEOUT" "$CRIU" restore -D "$img" --shell-job -d -o restore.log ||
            { echo "criu restore failed, see $img/restore.log" >&2; return 1; }
        criu_restore[k]=$(secs "$t0" "$(now)")
        # The last image is kept for the repeated restarts (restarts_compared).
        [ "$k" -eq "$NEXT" ] || rm -rf "$img"
    done
    criu_pid=$pid
    kill -USR2 "$pid"
    wait_for "$out" "^round $NEXT " 1
    criu_sum=$(sed -n "s/^round $NEXT checksum //p" "$out")
    kill -KILL "$pid" 2>/dev/null || true
    gone "$pid"
}

# stats T...: "min/median/max" of the times T.
stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.3f/%.3f/%.3f", v[1], m, v[NR]}'; }
median() { stats "$@" | cut -d/ -f2; }

# criu_restore_again COLD: CRIU's restore of its last dump once more (the restored program
# killed first), after SETTLE seconds, with the caches dropped if COLD=yes; sets `restart`.
criu_restore_again() {
    kill -KILL "$criu_pid" 2>/dev/null || true
    gone "$criu_pid"
    sleep "$SETTLE"
    [ "$1" = yes ] && drop_caches
    local img="$d/criu-$NEXT" t0
    truncate -s "$criu_out_len" "$d/criu.out"
    t0=$(now)
    timeout "$TIMEOUT" "$CRIU" restore -D "$img" --shell-job -d -o restore-again.log ||
        { echo "criu restore failed, see $img/restore-again.log" >&2; return 1; }
    restart=$(secs "$t0" "$(now)")
}

# restarts_compared: RESTARTS restarts of each tool, alternating, warm then (as root) cold;
# the first warm ones are those already measured. Prints the times and the ratio of medians.
restarts_compared() {
    local i mode cw=("$warm") xw=("${criu_restore[NEXT]}") cc=() xc=() pw=("$warm_inplace") pc=()
    for mode in warm cold; do
        [ "$mode" = warm ] || [ "$can_drop" = yes ] || continue
        for i in $(seq 1 "$RESTARTS"); do
            if [ "$mode" = warm ] && [ "$i" -eq 1 ]; then continue; fi
            sleep "$SETTLE"
            [ "$mode" = cold ] && drop_caches
            cairn_restart "restart-$mode-$i.log"
            if [ "$sum" != "$cairn_sum" ]; then
                echo "MISMATCH: round $NEXT checksum $cairn_sum after the first restart, $sum after restart $mode $i" >&2
                exit 1
            fi
            if [ "$mode" = warm ]; then cw+=("$restart"); pw+=("$inplace"); else cc+=("$restart"); pc+=("$inplace"); fi
            criu_restore_again "$([ "$mode" = cold ] && echo yes || echo no)"
            if [ "$mode" = warm ]; then xw+=("$restart"); else xc+=("$restart"); fi
        done
    done
    kill -KILL "$criu_pid" 2>/dev/null || true
    gone "$criu_pid"
    echo "# restarts ($RESTARTS each, alternating, ${SETTLE}s after the previous program's memory was freed; min/median/max s):"
    echo "#   warm: cairn ${cw[*]} = $(stats "${cw[@]}") | CRIU ${xw[*]} = $(stats "${xw[@]}") | ratio of medians $(ratio "$(median "${cw[@]}")" "$(median "${xw[@]}")")"
    echo "#   warm, until cairn's memory is all in place: cairn ${pw[*]} = $(stats "${pw[@]}") | ratio of medians $(ratio "$(median "${pw[@]}")" "$(median "${xw[@]}")")"
    if [ "${#cc[@]}" -gt 0 ]; then
        echo "#   cold: cairn ${cc[*]} = $(stats "${cc[@]}") | CRIU ${xc[*]} = $(stats "${xc[@]}") | ratio of medians $(ratio "$(median "${cc[@]}")" "$(median "${xc[@]}")")"
        echo "#   cold, until cairn's memory is all in place: cairn ${pc[*]} = $(stats "${pc[@]}") | ratio of medians $(ratio "$(median "${pc[@]}")" "$(median "${xc[@]}")")"
    fi
}

printf '%-6s %-7s %-6s %-4s %9s %9s %12s %12s %9s %9s\n' \
    MiB kind dirty ckpt frozen_s total_s written_B changed_B restart_s cold_s
for mib in $SIZES_MIB; do for kind in $KINDS; do for pm in $PERMILLE; do
    d="$WORK/run-$mib-$kind-$pm"
    rm -rf "$d"; mkdir -p "$d"
    log="$d/launch.log"
    setsid "$CAIRN" launch --store "$d/store" --job bench -- \
        "$PROG" "$mib" "$pm" $((NEXT + 1)) signal "$kind" >"$d/stdout" 2>"$log" &
    agent=$!
    groups+=("$agent")
    frozen_k=(); total_k=(); written_k=()
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
        frozen_k[k]=$frozen; total_k[k]=$total; written_k[k]=$written
        # Round k-1 rewrote `blocks` blocks, and created (4 blocks), grew-and-moved (60 new
        # blocks) or unmapped the side mapping, by k-1 mod 3.
        side=(4 60 0)
        if [ "$k" -eq 0 ]; then changed=$((mib * 1048576));
        else changed=$(((blocks + ${side[$(((k - 1) % 3))]}) * 65536)); fi
        printf '%-6s %-7s %-6s %-4s %9s %9s %12s %12s %9s %9s\n' \
            "$mib" "$kind" "$(awk "BEGIN {print $pm / 10}")%" "$k" "$frozen" "$total" \
            "$written" "$changed" - -
    done
    kill -KILL -- -"$agent" 2>/dev/null || true
    wait "$agent" 2>/dev/null || true
    # Restart only once the killed job's memory is freed (CRIU's restore below waits likewise).
    group_gone "$agent"
    # cairn_restart LOG: restarts the last generation, sets `restart` (seconds until the
    # program runs again) and `sum` (checksum of one more round in the restarted program).
    # The program writes into $d/stdout at its saved offset (a regular file): what one
    # restart wrote is cut off before the next, which writes the same lines again.
    cairn_restart() {
        truncate -s "$out_len" "$d/stdout"
        start=$(now)
        setsid "$CAIRN" restart --store "$d/store" --job bench >>"$d/stdout" 2>"$d/$1" &
        agent=$!
        groups+=("$agent")
        wait_for "$d/$1" 'running (agent pid' 1
        restart=$(secs "$start" "$(now)")
        kill -USR2 "$agent"
        wait_for "$d/stdout" "^round $NEXT " 1
        sum=$(sed -n "s/^round $NEXT checksum //p" "$d/stdout" | tail -1)
        # A lazy restore (root, not turned off) reports when every page is in place.
        inplace=$restart
        if [ "$(id -u)" = 0 ] && [ "${CAIRN_LAZY_RESTORE:-1}" != 0 ]; then
            wait_for "$d/$1" 'memory in place' 1
            inplace=$(awk -v r="$restart" -v l="$(sed -n 's/.*memory in place \([0-9.]*\) s.*/\1/p' "$d/$1")" \
                'BEGIN {printf "%.3f", r + l}')
        fi
        kill -KILL -- -"$agent" 2>/dev/null || true
        wait "$agent" 2>/dev/null || true
        group_gone "$agent"
    }
    out_len=$(stat -c %s "$d/stdout")
    sleep "$SETTLE"
    cairn_restart restart.log
    warm=$restart warm_inplace=$inplace cairn_sum=$sum cold=-
    if [ "$can_drop" = yes ] && [ "$criu_ok" != yes ]; then
        drop_caches
        cairn_restart restart-cold.log
        cold=$restart
        if [ "$sum" != "$cairn_sum" ]; then
            echo "MISMATCH: round $NEXT checksum $cairn_sum after the warm restart, $sum after the cold one" >&2
            exit 1
        fi
    fi
    restart=$warm
    dirty="$(awk "BEGIN {print $pm / 10}")%"
    printf '%-6s %-7s %-6s %-4s %9s %9s %12s %12s %9s %9s\n' "$mib" "$kind" \
        "$dirty" restart - - - - "$restart" "$cold"
    if [ "$criu_ok" = yes ]; then
        mkdir -p "$d"
        criu_run "$mib" "$kind" "$pm" "$d"
        printf '%-6s %-7s %-6s %-4s %11s %11s %12s %14s | %6s %6s %6s %6s %7s  (cairn/CRIU)\n' \
            MiB kind dirty ckpt criu_dump_s +sync_s criu_bytes criu_restore_s ckpt \
            ckpt/s frozen bytes restart
        for k in $(seq 0 "$NEXT"); do
            r=-
            [ "$k" -ne "$NEXT" ] || r=$(ratio "$restart" "${criu_restore[k]}")
            printf '%-6s %-7s %-6s %-4s %11s %11s %12s %14s | %6s %6s %6s %6s %7s\n' \
                "$mib" "$kind" "$dirty" "$k" "${criu_dump[k]}" "${criu_durable[k]}" \
                "${criu_bytes[k]}" "${criu_restore[k]}" \
                "$(ratio "${total_k[k]}" "${criu_dump[k]}")" \
                "$(ratio "${total_k[k]}" "${criu_durable[k]}")" \
                "$(ratio "${frozen_k[k]}" "${criu_dump[k]}")" \
                "$(ratio "${written_k[k]}" "${criu_bytes[k]}")" "$r"
        done
        restarts_compared
        # Only random data is independent of the buffer's address (ASLR); the other kinds
        # differ between two native runs already.
        if [ "$kind" = random ] && [ "$criu_sum" != "$cairn_sum" ]; then
            echo "MISMATCH: round $NEXT checksum $cairn_sum after cairn restart, $criu_sum after CRIU restore" >&2
            exit 1
        fi
        echo "# round $NEXT checksum after restart: cairn $cairn_sum, CRIU $criu_sum; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    else
        echo "# round $NEXT checksum after cairn restart: $cairn_sum; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    fi
    rm -rf "$d"
done; done; done
