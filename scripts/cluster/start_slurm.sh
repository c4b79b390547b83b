#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (for `make test-cluster`; needs root).
#
#   scripts/cluster/start_slurm.sh STATE_DIR     # prints `export SLURM_CONF=STATE_DIR/slurm.conf`
#   scripts/cluster/stop_slurm.sh STATE_DIR
#
# Installs Debian's slurm-wlm and munge when missing (one `apt-get update`), writes STATE_DIR/slurm.conf
# with the keys that work without systemd or cgroups (ProctrackType=proctrack/linuxproc, TaskPlugin=
# task/none, cons_tres over cores, every path absolute under STATE_DIR), starts munged, slurmctld and
# slurmd, and waits until the node is idle. Exit status 3: this machine cannot run SLURM (the reason is
# printed on stderr as `cannot run SLURM: ...`).
set -euo pipefail

state_dir="${1:?usage: $0 STATE_DIR}"
mkdir -p "$state_dir"
state_dir="$(cd "$state_dir" && pwd)"

cannot() {
  echo "cannot run SLURM: $*" >&2
  exit 3
}

[[ "$(id -u)" == 0 ]] || cannot "the daemons need root (running as uid $(id -u))"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || cannot "slurm-wlm/munge are not installed and there is no apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$state_dir/apt.log" 2>&1 \
    || cannot "apt-get update failed (see $state_dir/apt.log)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >>"$state_dir/apt.log" 2>&1 \
    || cannot "apt-get install slurm-wlm munge failed (see $state_dir/apt.log)"
fi

# munge: the key comes with the package; one daemon serves every SLURM daemon and client here.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
  munged --force >"$state_dir/munged.out" 2>&1 || cannot "munged did not start (see $state_dir/munged.out)"
fi
munge -n | unmunge >/dev/null 2>&1 || cannot "munge -n | unmunge fails"

host="$(hostname -s)"
cpus="$(nproc)"
memory_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
mkdir -p "$state_dir/spool/ctld" "$state_dir/spool/d" "$state_dir/log"
cat >"$state_dir/slurm.conf" <<CONF
ClusterName=smdiff-local
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=$((6817 + RANDOM % 1000))
SlurmdPort=$((7817 + RANDOM % 1000))
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$state_dir/spool/ctld
SlurmdSpoolDir=$state_dir/spool/d
SlurmctldPidFile=$state_dir/slurmctld.pid
SlurmdPidFile=$state_dir/slurmd.pid
SlurmctldLogFile=$state_dir/log/slurmctld.log
SlurmdLogFile=$state_dir/log/slurmd.log
JobCompType=jobcomp/none
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF

export SLURM_CONF="$state_dir/slurm.conf"
slurmctld -f "$SLURM_CONF" || cannot "slurmctld did not start (see $state_dir/log/slurmctld.log)"
slurmd -f "$SLURM_CONF" || cannot "slurmd did not start (see $state_dir/log/slurmd.log)"
for _ in $(seq 60); do
  if [[ "$(sinfo -h -n "$host" -o %t 2>/dev/null)" == idle ]]; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
cannot "node $host not idle after 60 s: $(sinfo -h -n "$host" -o '%t %E' 2>&1) (see $state_dir/log/)"
