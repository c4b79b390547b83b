#!/usr/bin/env bash
# Stop the daemons that scripts/cluster/start_slurm.sh STATE_DIR started (by the pids in their pid files;
# SIGKILL after 10 s for one that does not stop, e.g. slurmd still waiting on a cancelled job's steps).
#
#   scripts/cluster/stop_slurm.sh STATE_DIR
set -euo pipefail

state_dir="${1:?usage: $0 STATE_DIR}"
for daemon in slurmd slurmctld; do
  pid_file="$state_dir/$daemon.pid"
  [[ -s "$pid_file" ]] || continue
  pid="$(cat "$pid_file")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 20); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pid_file"
done
