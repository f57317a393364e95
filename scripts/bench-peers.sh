#!/usr/bin/env bash
# Builds the peers of the checkpoint benchmark, CRIU and DMTCP, from source into PEERS
# (default /tmp/cairn-peers): PEERS/sbin/criu, PEERS/bin/dmtcp_launch and the rest of DMTCP.
# scripts/bench-compare.sh finds them there. Nothing of either is kept in this repository.
#
# usage: bench-peers.sh [CRIU_SRC] [DMTCP_SRC]
#   CRIU_SRC   a checkout (or unpacked archive) of CRIU >= 4.1 (default /tmp/criu-src)
#   DMTCP_SRC  a checkout of DMTCP (default /tmp/dmtcp-src)
# A missing source directory skips that tool. Environment: PEERS, JOBS (make -j, default 2),
# APT=0 skips installing CRIU's build dependencies (Debian packages; needs root).
#
# Getting the sources without network access to their hosts: any clone will do, e.g. from
# a bare mirror, `mkdir -p /tmp/criu-src && git --git-dir=MIRROR archive HEAD | tar -x -C
# /tmp/criu-src`. Run as root: CRIU itself needs root to dump and restore.
set -euo pipefail
CRIU_SRC=${1:-/tmp/criu-src}
DMTCP_SRC=${2:-/tmp/dmtcp-src}
PEERS=${PEERS:-/tmp/cairn-peers}
JOBS=${JOBS:-2}
APT=${APT:-1}
say() { echo "[bench-peers $(date +%T)] $*"; }
mkdir -p "$PEERS/sbin" "$PEERS/bin"

if [ -d "$CRIU_SRC" ]; then
    if [ "$APT" = 1 ]; then
        say "CRIU: build dependencies (apt-get)"
        # Waits for the dpkg lock if another apt runs.
        apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }
        apt_get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt_get install --no-install-recommends \
            build-essential pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler \
            protobuf-compiler python3-protobuf libnl-3-dev libnet1-dev libcap-dev libbsd-dev \
            libaio-dev libgnutls28-dev uuid-dev >/dev/null
    fi
    say "CRIU: make -j$JOBS criu in $CRIU_SRC"
    # Only the criu binary: no documentation (asciidoc), no Python tools, no plugins.
    make -C "$CRIU_SRC" -j"$JOBS" criu >"$PEERS/criu-build.log" 2>&1 ||
        { say "CRIU build failed, see $PEERS/criu-build.log"; tail -20 "$PEERS/criu-build.log"; exit 1; }
    install -m 0755 "$CRIU_SRC/criu/criu" "$PEERS/sbin/criu"
    say "CRIU: $("$PEERS/sbin/criu" --version | tr '\n' ' ')-> $PEERS/sbin/criu"
    "$PEERS/sbin/criu" check >"$PEERS/criu-check.log" 2>&1 &&
        say "CRIU: criu check: $(tail -1 "$PEERS/criu-check.log")" ||
        say "CRIU: criu check reports problems (see $PEERS/criu-check.log); dump/restore may still work"
else
    say "CRIU: no source in $CRIU_SRC, skipped"
fi

if [ -d "$DMTCP_SRC" ]; then
    say "DMTCP: configure --prefix=$PEERS in $DMTCP_SRC"
    (cd "$DMTCP_SRC" && ./configure --prefix="$PEERS" >"$PEERS/dmtcp-configure.log" 2>&1) ||
        { say "DMTCP configure failed, see $PEERS/dmtcp-configure.log"; tail -20 "$PEERS/dmtcp-configure.log"; exit 1; }
    say "DMTCP: make -j$JOBS && make install"
    (cd "$DMTCP_SRC" && make -j"$JOBS" && make install) >"$PEERS/dmtcp-build.log" 2>&1 ||
        { say "DMTCP build failed, see $PEERS/dmtcp-build.log"; tail -20 "$PEERS/dmtcp-build.log"; exit 1; }
    say "DMTCP: $("$PEERS/bin/dmtcp_launch" --version 2>&1 | head -1) -> $PEERS/bin"
else
    say "DMTCP: no source in $DMTCP_SRC, skipped"
fi
say "done: add $PEERS/sbin and $PEERS/bin to PATH, or let scripts/bench-compare.sh find them"
