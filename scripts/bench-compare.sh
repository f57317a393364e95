#!/usr/bin/env bash
# cairn, CRIU and DMTCP side by side, in one run, on the workloads of the checkpoint targets
# (results in docs/performance.md, "Side by side with CRIU and DMTCP"). Not a test: timings
# depend on the machine and on what else runs.
#
# Every tool checkpoints the same program, tests/programs/benchwork.c, holding MIB MiB of
# incompressible data, driven through request files (no signals, no open descriptors):
#
# * rewrite: the program rewrites all its memory continuously at full speed (every page
#   dirty after each sweep of ~tens of ms). A first work window (WORK_SECS, no checkpoint)
#   counts its sweeps; two more windows do the same number of sweeps, each with one
#   checkpoint taken 1 s into it. "lost" = the window's wall time minus the first's: what
#   the program lost to the checkpoint (frozen time, page faults, CPU the checkpointer took).
#   A lost time marked "*" ended before the checkpoint was durable: it undercounts (raise
#   WORK_SECS).
# * scatter: the program sits idle. Checkpoint 1 is an idle first checkpoint; then PERMILLE
#   of its pages get new data, one at a random place in each of as many equal stretches
#   (scattered single 4 KiB pages), checkpoint 2 (bytes against the changed bytes); the job
#   is killed (-9) and restarted from checkpoint 2 ("restart": until the program runs
#   again); the same amount of pages changes again and checkpoint 3 is the first after the
#   restart. After each round the program prints a checksum of its memory: it must be the
#   same under every tool (the generator's state is in memory, so it survives the restarts).
# * maps: tests/conformance/many_maps.c, 20,000 one-page mappings: one checkpoint, kill -9,
#   restart until the program runs; the restored program then checks every mapping (not
#   under DMTCP, which takes the SIGUSR2 that starts the check).
#
# Tools (TOOLS, default all that are found):
# * cairn: `cairn launch`, checkpoint by SIGUSR1 to the agent, frozen/total/bytes written
#   from the agent's log (a checkpoint is durable, fsynced, when reported), `cairn restart`
#   until "running" (as root large mappings are filled lazily behind the running program:
#   the time until "memory in place" is printed too).
# * criu: the program natively (setsid), `criu dump --shell-job --leave-running` (frozen:
#   the dump's duration, an upper bound: CRIU keeps the program frozen while it dumps its
#   memory), durable = dump + `sync -f` of the images (CRIU leaves them in the page cache);
#   bytes = the image directory; restart = `criu restore --shell-job -d` (it returns with the
#   program running, every page in place). Needs root and CRIU >= 4.1.
# * dmtcp, dmtcp-gzip: `dmtcp_launch --no-gzip` / `--gzip` (DMTCP's default) joined to a
#   private coordinator, checkpoint by `dmtcp_command --bcheckpoint` (frozen: its duration;
#   DMTCP stops every thread for the whole write), durable = that + `sync -f`, bytes = the
#   checkpoint files; restart = `dmtcp_restart` until the coordinator reports the program
#   running.
# CRIU and DMTCP are looked up on PATH, then in PEERS (default /tmp/cairn-peers, where
# scripts/bench-peers.sh builds them).
#
# Also measured in the same run, before the tools: the disk's write rate for MIB MiB to a
# new file, `dd bs=16M oflag=direct` and `dd bs=16M conv=fsync` (buffered + fsync); a first
# checkpoint's durable rate is compared with the better of the two.
#
# Environment: MIB (1024), TOOLS ("cairn criu dmtcp dmtcp-gzip"), WORKLOADS ("rewrite
# scatter maps"; "idle" alone is scatter's first checkpoint), GZIP_WORKLOADS (the workloads
# of dmtcp-gzip, default WORKLOADS: gzip makes its checkpoints slow), WORK_SECS (window
# length, default 10 + 6 per GiB), PERMILLE (10), SETTLE (2 s before each restart), TIMEOUT (600 s for every wait), CAIRN (target/release/cairn), PEERS,
# WORK (scratch directory on the disk to measure; default a fresh one under /var/tmp).
# Output: one line per checkpoint and restart, then Markdown tables with the ratios to CRIU.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${MIB:-1024}
TOOLS=${TOOLS:-"cairn criu dmtcp dmtcp-gzip"}
WORKLOADS=${WORKLOADS:-"rewrite scatter maps"}
WORK_SECS=${WORK_SECS:-$((10 + 6 * MIB / 1024))}
GZIP_WORKLOADS=${GZIP_WORKLOADS:-$WORKLOADS}
PERMILLE=${PERMILLE:-10}
SETTLE=${SETTLE:-2}
TIMEOUT=${TIMEOUT:-600}
CAIRN=${CAIRN:-target/release/cairn}
PEERS=${PEERS:-/tmp/cairn-peers}
made_work=no
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d /var/tmp/cairn-compare.XXXXXX); made_work=yes; fi
[ -x "$CAIRN" ] || cargo build --release --quiet -p cairn
CAIRN=$(readlink -f "$CAIRN")
PROG="$WORK/benchwork"
cc -O2 -Wall -o "$PROG" tests/programs/benchwork.c

find_tool() { # name: on PATH, else in PEERS/sbin or PEERS/bin
    command -v "$1" 2>/dev/null || { [ -x "$PEERS/sbin/$1" ] && echo "$PEERS/sbin/$1"; } ||
        { [ -x "$PEERS/bin/$1" ] && echo "$PEERS/bin/$1"; } || true
}
CRIU=$(find_tool criu)
DMTCP_BIN=$(dirname "$(find_tool dmtcp_launch)")
tools=()
for t in $TOOLS; do
    case $t in
    cairn) tools+=(cairn) ;;
    criu)
        if [ -z "$CRIU" ]; then echo "# criu not found: skipped"; continue; fi
        v=$("$CRIU" --version 2>/dev/null | sed -n 's/^Version: *//p')
        if [ "$(id -u)" -ne 0 ]; then echo "# criu needs root: skipped"
        elif ! printf '4.1\n%s\n' "$v" | sort -V -C; then echo "# criu $v older than 4.1: skipped"
        else tools+=(criu); echo "# criu $v: $CRIU"; fi ;;
    dmtcp | dmtcp-gzip)
        if [ ! -x "$DMTCP_BIN/dmtcp_launch" ]; then echo "# dmtcp_launch not found: $t skipped"
        else tools+=("$t"); fi ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
    esac
done
if [ -x "$DMTCP_BIN/dmtcp_launch" ]; then
    echo "# dmtcp $("$DMTCP_BIN/dmtcp_launch" --version 2>&1 | head -1): $DMTCP_BIN"
fi
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(df -P "$WORK" | awk 'NR==2 {print $1}') ($(findmnt -no FSTYPE -T "$WORK")), $(date -u '+%Y-%m-%d %H:%M UTC'), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $MIB MiB of incompressible data; tools: ${tools[*]}; workloads: $WORKLOADS; work window ${WORK_SECS}s; ${PERMILLE} per mille of the pages changed per round"

cleanup_cmds=()
cleanup() {
    local c
    for c in "${cleanup_cmds[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
    [ "$made_work" = no ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

count() { local n; n=$(grep -c -- "$2" "$1" 2>/dev/null); echo "${n:-0}"; }
wait_for() { # file needle n
    local end=$((SECONDS + TIMEOUT))
    while [ "$(count "$1" "$2")" -lt "$3" ]; do
        [ $SECONDS -lt $end ] || { echo "timeout waiting for $2 in $1" >&2; return 1; }
        sleep 0.01
    done
}
now() { date +%s.%N; }
secs() { awk "BEGIN {printf \"%.3f\", $2 - $1}"; }
ratio() { awk "BEGIN {if (\"$1\" != \"-\" && \"$2\" != \"-\" && $2 + 0 > 0) printf \"%.2f\", $1 / $2; else print \"-\"}" 2>/dev/null || echo -; }
gone() { # pid
    local end=$((SECONDS + TIMEOUT))
    while [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; do
        [ $SECONDS -lt $end ] || { echo "timeout waiting for pid $1 to go" >&2; return 1; }
        sleep 0.02
    done
}
group_gone() { # pgid
    local end=$((SECONDS + TIMEOUT))
    while ps -o pid= -g "$1" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { echo "timeout waiting for process group $1" >&2; return 1; }
        sleep 0.02
    done
}

# ---- the disk, measured first ----
dd_rate() { # extra dd flags...: MB/s writing MIB MiB to a new file
    local f="$WORK/dd.out" t0 t
    rm -f "$f"; sync
    t0=$(now)
    dd if=/dev/zero of="$f" bs=16M count=$((MIB / 16)) "$@" status=none
    t=$(secs "$t0" "$(now)")
    rm -f "$f"
    awk "BEGIN {printf \"%.0f\", $MIB * 1048576 / $t / 1e6}"
}
disk_direct=$(dd_rate oflag=direct)
disk_fsync=$(dd_rate conv=fsync)
disk_best=$((disk_direct > disk_fsync ? disk_direct : disk_fsync))
echo "# disk: $MIB MiB to a new file: O_DIRECT $disk_direct MB/s, buffered + fsync $disk_fsync MB/s"

# ---- per tool: launch, checkpoint, kill, restart ----
# Each sets globals: pid (the program, or cairn's agent), frozen, durable, bytes, restart_s,
# inplace (cairn: until every page is in place; others: = restart_s).
ckpt_n=0
want_inplace=yes
restart_out=/dev/null # where a restarted program's stdout goes (cairn, DMTCP)
ready_file=
launch() { # tool dir stdout ready-needle command...: waits for the needle in dir/ctl/out or stdout
    local tool=$1 d=$2 out=$3 needle=$4
    shift 4
    mkdir -p "$d/ctl"
    ckpt_n=0
    case $tool in
    cairn)
        clog="$d/launch.log"
        setsid "$CAIRN" launch --store "$d/store" --job bench -- "$@" </dev/null >"$out" 2>"$clog" &
        pid=$!
        cleanup_cmds+=("kill -KILL -- -$pid") ;;
    criu)
        setsid "$@" </dev/null >"$out" 2>&1 &
        pid=$!
        cleanup_cmds+=("kill -KILL $pid") ;;
    dmtcp | dmtcp-gzip)
        port=$((20000 + RANDOM % 20000))
        mkdir -p "$d/img"
        "$DMTCP_BIN/dmtcp_coordinator" --daemon -q -p "$port" --ckptdir "$d/img" \
            >"$d/coord.log" 2>&1
        cleanup_cmds+=("$DMTCP_BIN/dmtcp_command -p $port --quit")
        local gz=--no-gzip
        [ "$tool" = dmtcp ] || gz=--gzip
        setsid "$DMTCP_BIN/dmtcp_launch" -q -j -p "$port" --ckptdir "$d/img" "$gz" "$@" \
            </dev/null >"$out" 2>"$d/dmtcp.log" &
        pid=$!
        cleanup_cmds+=("kill -KILL $pid") ;;
    esac
    wait_for "$ready_file" "$needle" 1
}

checkpoint() { # tool dir
    local tool=$1 d=$2 t0 line img
    ckpt_n=$((ckpt_n + 1))
    case $tool in
    cairn)
        local before
        before=$(count "$clog" 'checkpoint committed')
        kill -USR1 "$pid"
        wait_for "$clog" 'checkpoint committed' $((before + 1))
        line=$(grep 'checkpoint committed' "$clog" | tail -1)
        frozen=$(sed -n 's/.*frozen \([0-9.]*\)s.*/\1/p' <<<"$line")
        durable=$(sed -n 's/.*total \([0-9.]*\)s.*/\1/p' <<<"$line")
        bytes=$(sed -n 's/.* \([0-9]*\) bytes written.*/\1/p' <<<"$line") ;;
    criu)
        img="$d/img-$ckpt_n"
        mkdir -p "$img"
        t0=$(now)
        timeout "$TIMEOUT" "$CRIU" dump -t "$pid" -D "$img" --shell-job --leave-running -o dump.log ||
            { echo "criu dump failed, see $img/dump.log" >&2; return 1; }
        frozen=$(secs "$t0" "$(now)")
        sync -f "$img"
        durable=$(secs "$t0" "$(now)")
        bytes=$(du -sb --exclude='*.log' "$img" | cut -f1)
        # Only the newest image is kept (for the restart).
        [ "$ckpt_n" -le 1 ] || rm -rf "$d/img-$((ckpt_n - 1))" ;;
    dmtcp | dmtcp-gzip)
        t0=$(now)
        timeout "$TIMEOUT" "$DMTCP_BIN/dmtcp_command" -p "$port" --bcheckpoint >/dev/null ||
            { echo "dmtcp checkpoint failed" >&2; return 1; }
        frozen=$(secs "$t0" "$(now)")
        sync -f "$d/img"
        durable=$(secs "$t0" "$(now)")
        bytes=$(cat "$d"/img/ckpt_*.dmtcp | wc -c) ;;
    esac
}

kill_job() { # tool
    case $1 in
    cairn) kill -KILL -- "-$pid" 2>/dev/null || true; { wait "$pid" || true; } 2>/dev/null; group_gone "$pid" ;;
    # The native program is this script's child until a restore: reaped here, its pid free
    # again for CRIU's restore.
    *) kill -KILL "$pid" 2>/dev/null || true; { wait "$pid" || true; } 2>/dev/null; gone "$pid" ;;
    esac
    case $1 in dmtcp*) # until DMTCP's coordinator has seen the program go
        local end=$((SECONDS + TIMEOUT))
        until "$DMTCP_BIN/dmtcp_command" -p "$port" -s 2>/dev/null | grep -q 'NUM_PEERS=0'; do
            [ $SECONDS -lt $end ] || { echo "timeout: DMTCP's coordinator still counts the killed program" >&2; return 1; }
            sleep 0.02
        done ;;
    esac
}

restart() { # tool dir
    local tool=$1 d=$2 t0
    sleep "$SETTLE"
    t0=$(now)
    case $tool in
    cairn)
        clog="$d/restart.log"
        setsid "$CAIRN" restart --store "$d/store" --job bench </dev/null >>"$restart_out" 2>"$clog" &
        pid=$!
        cleanup_cmds+=("kill -KILL -- -$pid")
        wait_for "$clog" 'running (agent pid' 1
        restart_s=$(secs "$t0" "$(now)")
        inplace=$restart_s
        # Only a restore with a large mapping (scatter) fills lazily and reports this.
        if [ "$want_inplace" = yes ] && [ "$(id -u)" = 0 ] && [ "${CAIRN_LAZY_RESTORE:-1}" != 0 ]; then
            wait_for "$clog" 'memory in place' 1
            inplace=$(awk -v r="$restart_s" -v l="$(sed -n 's/.*memory in place \([0-9.]*\) s.*/\1/p' "$clog")" \
                'BEGIN {printf "%.3f", r + l}')
        fi ;;
    criu)
        timeout "$TIMEOUT" "$CRIU" restore -D "$d/img-$ckpt_n" --shell-job -d -o restore.log ||
            { echo "criu restore failed, see $d/img-$ckpt_n/restore.log" >&2; return 1; }
        restart_s=$(secs "$t0" "$(now)")
        inplace=$restart_s ;;
    dmtcp | dmtcp-gzip)
        setsid "$DMTCP_BIN/dmtcp_restart" -q -j -p "$port" "$d"/img/ckpt_*.dmtcp \
            </dev/null >>"$restart_out" 2>>"$d/dmtcp.log" &
        pid=$!
        cleanup_cmds+=("kill -KILL $pid")
        local end=$((SECONDS + TIMEOUT))
        until "$DMTCP_BIN/dmtcp_command" -p "$port" -s 2>/dev/null | tr '\n' ' ' |
            grep -q 'NUM_PEERS=1 .*RUNNING=yes'; do
            [ $SECONDS -lt $end ] || { echo "timeout waiting for dmtcp_restart" >&2; return 1; }
            sleep 0.01
        done
        restart_s=$(secs "$t0" "$(now)")
        inplace=$restart_s ;;
    esac
}

finish() { # tool dir
    kill_job "$1"
    case $1 in dmtcp | dmtcp-gzip) "$DMTCP_BIN/dmtcp_command" -p "$port" --quit >/dev/null 2>&1 || true ;; esac
    rm -rf "$2"
}

# Results: R[tool.workload.metric] = value.
declare -A R
row() { printf '%-9s %-10s %-5s %9s %9s %13s %13s %9s %9s %9s\n' "$@"; }
row workload tool ckpt frozen_s durable_s written_B changed_B lost_s restart_s inplace_s

run_rewrite() { # tool
    local tool=$1 d="$WORK/rewrite-$1" k s0 s mark
    rm -rf "$d"
    ready_file="$d/ctl/out"
    launch "$tool" "$d" /dev/null '^ready' "$PROG" "$MIB" rewrite "$d/ctl" "$WORK_SECS"
    touch "$d/ctl/go.1"
    wait_for "$d/ctl/out" '^work 1 ' 1
    s0=$(sed -n 's/^work 1 .* seconds //p' "$d/ctl/out")
    for k in 1 2; do
        touch "$d/ctl/go.$((k + 1))"
        sleep 1
        checkpoint "$tool" "$d"
        mark=""
        [ "$(count "$d/ctl/out" "^work $((k + 1)) ")" -eq 0 ] || mark="*"
        wait_for "$d/ctl/out" "^work $((k + 1)) " 1
        s=$(sed -n "s/^work $((k + 1)) .* seconds //p" "$d/ctl/out")
        R[$tool.rewrite.frozen$k]=$frozen R[$tool.rewrite.durable$k]=$durable
        R[$tool.rewrite.bytes$k]=$bytes R[$tool.rewrite.lost$k]="$(secs "$s0" "$s")$mark"
        row rewrite "$tool" "$k" "$frozen" "$durable" "$bytes" $((MIB * 1048576)) \
            "${R[$tool.rewrite.lost$k]}" - -
    done
    finish "$tool" "$d"
}

run_scatter() { # tool
    local tool=$1 d="$WORK/scatter-$1" r sum changed
    rm -rf "$d"
    ready_file="$d/ctl/out"
    launch "$tool" "$d" /dev/null '^ready' "$PROG" "$MIB" scatter "$d/ctl" "$PERMILLE"
    round() { # n: request round n, check its checksum against the other tools'
        touch "$d/ctl/go.$1"
        wait_for "$d/ctl/out" "^round $1 " 1
        changed=$(sed -n "s/^round $1 changed \([0-9]*\) .*/\1/p" "$d/ctl/out")
        sum=$(sed -n "s/^round $1 .* checksum //p" "$d/ctl/out")
        if [ -n "${R[sum$1]:-}" ] && [ "${R[sum$1]}" != "$sum" ]; then
            echo "MISMATCH: round $1 checksum $sum under $tool, ${R[sum$1]} under ${R[sumtool$1]}" >&2
            exit 1
        fi
        R[sum$1]=$sum R[sumtool$1]=$tool
    }
    checkpoint "$tool" "$d"
    R[$tool.idle.frozen]=$frozen R[$tool.idle.durable]=$durable R[$tool.idle.bytes]=$bytes
    row idle "$tool" 1 "$frozen" "$durable" "$bytes" $((MIB * 1048576)) - - -
    round 1
    checkpoint "$tool" "$d"
    R[$tool.scatter.frozen]=$frozen R[$tool.scatter.durable]=$durable R[$tool.scatter.bytes]=$bytes
    R[changed]=$changed
    row scattered "$tool" 2 "$frozen" "$durable" "$bytes" "$changed" - - -
    kill_job "$tool"
    restart "$tool" "$d"
    R[$tool.restart]=$restart_s R[$tool.inplace]=$inplace
    row restart "$tool" - - - - - - "$restart_s" "$inplace"
    round 2
    checkpoint "$tool" "$d"
    R[$tool.after.frozen]=$frozen R[$tool.after.durable]=$durable R[$tool.after.bytes]=$bytes
    row after-rst "$tool" 3 "$frozen" "$durable" "$bytes" "$changed" - - -
    round 3
    finish "$tool" "$d"
}

run_maps() { # tool: 20,000 one-page mappings (tests/conformance/many_maps.c): restart time
    local tool=$1 d="$WORK/maps-$1"
    rm -rf "$d"; mkdir -p "$d"
    [ -x "$WORK/many_maps" ] ||
        cc -O2 -Wall -I tests/conformance -o "$WORK/many_maps" tests/conformance/many_maps.c
    ready_file="$d/stdout" restart_out="$d/stdout" want_inplace=no
    launch "$tool" "$d" "$d/stdout" 'READY' "$WORK/many_maps"
    checkpoint "$tool" "$d"
    R[$tool.maps.frozen]=$frozen R[$tool.maps.durable]=$durable R[$tool.maps.bytes]=$bytes
    row maps "$tool" 1 "$frozen" "$durable" "$bytes" - - - -
    kill_job "$tool"
    restart "$tool" "$d"
    R[$tool.maps.restart]=$restart_s
    row restart "$tool" - - - - - - "$restart_s" "$inplace"
    # The restored program checks every mapping on SIGUSR2 (DMTCP takes SIGUSR2 itself).
    case $tool in dmtcp*) ;; *)
        kill -USR2 "$pid"
        wait_for "$d/stdout" 'CHECK 1' 1
        grep -q 'CHECK 1 PASS' "$d/stdout" || { echo "many_maps failed its check after $tool's restart" >&2; exit 1; } ;;
    esac
    restart_out=/dev/null want_inplace=yes
    finish "$tool" "$d"
}

run_idle() { # tool: the idle first checkpoint alone (as the first of scatter)
    local tool=$1 d="$WORK/idle-$1"
    rm -rf "$d"
    ready_file="$d/ctl/out"
    launch "$tool" "$d" /dev/null '^ready' "$PROG" "$MIB" scatter "$d/ctl" "$PERMILLE"
    checkpoint "$tool" "$d"
    R[$tool.idle.frozen]=$frozen R[$tool.idle.durable]=$durable R[$tool.idle.bytes]=$bytes
    row idle "$tool" 1 "$frozen" "$durable" "$bytes" $((MIB * 1048576)) - - -
    finish "$tool" "$d"
}

for w in $WORKLOADS; do
    for t in "${tools[@]}"; do
        if [ "$t" = dmtcp-gzip ] && [[ " $GZIP_WORKLOADS " != *" $w "* ]]; then
            # scatter's first checkpoint is the idle one
            [ "$w" != scatter ] || [[ " $GZIP_WORKLOADS " != *" idle "* ]] || run_idle "$t"
            continue
        fi
        "run_$w" "$t"
    done
done
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg); checksums after rounds 1-3 equal under every tool: ${R[sum1]:--} ${R[sum2]:--} ${R[sum3]:--}"

# ---- summary: Markdown, ratios to CRIU ----
v() { echo "${R[$1]:--}"; }
mb() { local b; b=$(v "$1"); [ "$b" = - ] && echo - || awk "BEGIN {printf \"%.1f MB\", $b / 1e6}"; }
rc() { # tool key: "(0.12x)" against CRIU's same key, when both exist
    local a c
    a=$(v "$1.$2"); c=$(v "criu.$2")
    a=${a%\*}; c=${c%\*}
    [ "$1" != criu ] && [ "$a" != - ] && [ "$c" != - ] && echo " ($(ratio "$a" "$c")x)" || true
}
notes=()
echo
echo "| $MIB MiB | $(printf '%s | ' "${tools[@]}")"
echo "| --- | $(printf -- '--- | %.0s' "${tools[@]}")"
line() { # label key formatter
    local t out="| $1 |"
    for t in "${tools[@]}"; do out+=" $($3 "$t.$2")$(rc "$t" "$2") |"; done
    echo "$out"
}
s() { local x; x=$(v "$1"); [ "$x" = - ] && echo - || echo "$x s"; }
if [[ " $WORKLOADS " == *" rewrite "* ]]; then
    line "rewriter: frozen, 1st checkpoint" rewrite.frozen1 s
    line "rewriter: frozen, 2nd" rewrite.frozen2 s
    line "rewriter: durable, 1st" rewrite.durable1 s
    line "rewriter: durable, 2nd" rewrite.durable2 s
    line "rewriter: bytes, 1st" rewrite.bytes1 mb
    line "rewriter: bytes, 2nd" rewrite.bytes2 mb
    line "rewriter: work lost, 1st" rewrite.lost1 s
    line "rewriter: work lost, 2nd" rewrite.lost2 s
    for t in "${tools[@]}"; do
        [ "$t" != criu ] && [ "$(v criu.rewrite.frozen1)" != - ] || continue
        l1=$(v "$t.rewrite.lost1") l2=$(v "$t.rewrite.lost2")
        [ "$l1" != - ] || continue
        notes+=("# $t: rewriter's work lost / CRIU's frozen time: $(ratio "${l1%\*}" "$(v criu.rewrite.frozen1)")x, $(ratio "${l2%\*}" "$(v criu.rewrite.frozen2)")x")
    done
fi
if [[ " $WORKLOADS " == *" scatter "* ]]; then
    line "idle: first checkpoint, frozen" idle.frozen s
    line "idle: first checkpoint, durable" idle.durable s
    line "idle: first checkpoint, bytes" idle.bytes mb
    line "scattered pages ($(mb changed) changed): frozen" scatter.frozen s
    line "scattered pages: durable" scatter.durable s
    line "scattered pages: bytes" scatter.bytes mb
    line "restart until the program runs" restart s
    line "restart until every page is in place" inplace s
    line "first checkpoint after the restart: durable" after.durable s
    line "first checkpoint after the restart: bytes" after.bytes mb
fi
if [[ " $WORKLOADS " == *" maps "* ]]; then
    line "20,000 mappings: checkpoint, durable" maps.durable s
    line "20,000 mappings: restart until the program runs" maps.restart s
fi
if [[ " $WORKLOADS " == *" scatter "* ]]; then
    for t in "${tools[@]}"; do
        b=$(v "$t.idle.bytes") du=$(v "$t.idle.durable")
        [ "$b" = - ] || notes+=("# $t: idle first checkpoint durable at $(awk "BEGIN {printf \"%.0f\", $b / $du / 1e6}") MB/s = $(awk "BEGIN {printf \"%.2f\", $b / $du / 1e6 / $disk_best}")x the disk's best ($disk_best MB/s)")
    done
fi
printf '%s\n' "${notes[@]}"
