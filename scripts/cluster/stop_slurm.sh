#!/usr/bin/env bash
# Stop the daemons that scripts/cluster/start_slurm.sh STATE_DIR started (by the pids in their pid files).
#
#   scripts/cluster/stop_slurm.sh STATE_DIR
set -euo pipefail

state_dir="${1:?usage: $0 STATE_DIR}"
for daemon in slurmd slurmctld; do
  pid_file="$state_dir/$daemon.pid"
  if [[ -s "$pid_file" ]]; then
    kill "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file"
  fi
done
