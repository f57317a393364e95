#!/usr/bin/env bash
# Starts a real one-node Slurm cluster on localhost for cairn's integration tests.
# Installs munge, slurmctld, slurmd and the client tools from Debian's packages, writes a
# configuration under $CAIRN_SLURM_DIR (default /tmp/cairn-slurm), starts munged, slurmctld and
# slurmd without systemd, and waits until the node is idle. Stop it with scripts/slurm/stop.sh.
# Needs root. Idempotent: an already-running cluster from this script is stopped first.
set -euo pipefail

dir=${CAIRN_SLURM_DIR:-/tmp/cairn-slurm}
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "slurm/setup.sh: must run as root" >&2
  exit 2
fi

need=()
for p in munge slurmctld slurmd slurm-client; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bash "$here/stop.sh" >/dev/null 2>&1 || true

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$dir"/{spool/ctld,spool/d,log,run} /run/munge /var/log/munge /var/lib/munge /etc/slurm
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi

cat > /etc/slurm/slurm.conf <<CONF
# Written by cairn's scripts/slurm/setup.sh: a one-node test cluster on localhost.
ClusterName=cairn-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=10
OverTimeLimit=0
InactiveLimit=0
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
printf 'CgroupPlugin=autodetect\n' > /etc/slurm/cgroup.conf

runuser -u munge -- /usr/sbin/munged --force
/usr/sbin/slurmctld -i
/usr/sbin/slurmd

for _ in $(seq 1 60); do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
  case "$state" in
    idle) echo "slurm: node $host idle"; exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
echo "slurm/setup.sh: node did not become idle (state: ${state:-unknown}); see $dir/log" >&2
exit 1
