#!/usr/bin/env bash
# Installs what building and testing cairn needs on a fresh Debian 12 machine.
# Idempotent; safe to run again. Needs root (or sudo) for apt-get and useradd.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

pkgs=(build-essential pkg-config python3 perl make gawk coreutils procps util-linux mount e2fsprogs passwd
  golang-go redis-server python3-zmq
  # MPI jobs (tests/e2e/mpi.rs): both MPI implementations, called by their explicit names
  # (mpicc.openmpi, mpirun.openmpi, mpicc.mpich, mpiexec.mpich: both install alternatives),
  # and LAMMPS (`lmp`, built against Open MPI).
  openmpi-bin libopenmpi-dev mpich libmpich-dev lammps)
# The runtimes of tests/e2e/runtimes.rs: a JDK and Node.js, from Debian unless one is already
# installed (e.g. Node.js from another repository).
if ! command -v javac >/dev/null 2>&1; then pkgs+=(default-jdk-headless); fi
if ! command -v node >/dev/null 2>&1; then pkgs+=(nodejs); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # Another apt (unattended upgrades, a second job) may hold the package lock: wait for it
  # (up to 10 minutes) instead of failing at once.
  echo "setup: installing ${missing[*]} (apt-get; waits for a busy package lock)"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    "${missing[@]}" >/dev/null
  echo "setup: packages installed"
else
  echo "setup: every package needed is installed"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install a Rust toolchain (rustup, Rust >= 1.85) and re-run" >&2
  exit 1
fi

# An ordinary user for the tests that check the unprivileged cycle.
if [ "$(id -u)" -eq 0 ] && ! id cairn-test >/dev/null 2>&1; then
  echo "setup: creating the user cairn-test (for the unprivileged tests)"
  useradd --create-home --shell /bin/bash cairn-test
fi
