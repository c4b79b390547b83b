#!/usr/bin/env bash
# Submit a job to SLURM with the process layout jax expects: ONE TASK PER GPU. jax 0.10.2's SLURM
# detection (jax/_src/clusters/slurm_cluster.py) takes the process count and id from SLURM_NTASKS and
# SLURM_PROCID, the coordinator from the step's first node, and gives each process only the GPU
# numbered SLURM_LOCALID; with one task per node each process would use GPU 0 alone. So every node runs
# as many tasks as it has GPUs, each task sees all of the node's GPUs (no per-task binding) and keeps
# its own. SMDIFF_EXPECTED_DEVICES (nodes x GPUs) makes a run that sees fewer devices stop at start.
#
#   launch/slurm.sh --nodes=4 [--gpus_per_node=8] [--cpus_per_task=8] [--partition=P] [--time=24:00:00]
#                   [--job_name=smdiff] [--log_dir=.] [--signal_seconds=120] [--sbatch_arg=ARG]...
#                   [--dry_run] JOB -- <smdiff JOB flags>
#   CPU devices instead of GPUs (tests, CPU clusters): --cpu_tasks_per_node=K --cpu_devices_per_task=M
#
# JOB: train, sample, pianoroll-eval, reverse-process (multi-process) or evaluate, build (one process
# on one node with every GPU of it). The job gets a coordinator port that is free on its first node,
# a pre-timeout SIGTERM (--signal_seconds before the time limit; train saves and stops) after which the
# job requeues itself to resume, and --requeue so a preempted job starts again. The workdir must be on a
# filesystem every node sees, or in a bucket (gs://...). Environment: PYTHON, DRY_RUN=1.
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 --nodes=N [--gpus_per_node=G | --cpu_tasks_per_node=K --cpu_devices_per_task=M] [--cpus_per_task=C] [--partition=P] [--time=T] [--job_name=NAME] [--log_dir=DIR] [--signal_seconds=S] [--sbatch_arg=ARG]... [--dry_run] JOB -- <smdiff JOB flags>"
job="" nodes="" gpus_per_node=8 cpu_tasks_per_node="" cpu_devices_per_task=1 cpus_per_task=8
partition="" time_limit="" job_name=smdiff log_dir=. signal_seconds=120
sbatch_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes=*) nodes="${1#--nodes=}" ;;
    --gpus_per_node=*) gpus_per_node="${1#--gpus_per_node=}" ;;
    --cpu_tasks_per_node=*) cpu_tasks_per_node="${1#--cpu_tasks_per_node=}" ;;
    --cpu_devices_per_task=*) cpu_devices_per_task="${1#--cpu_devices_per_task=}" ;;
    --cpus_per_task=*) cpus_per_task="${1#--cpus_per_task=}" ;;
    --partition=*) partition="${1#--partition=}" ;;
    --time=*) time_limit="${1#--time=}" ;;
    --job_name=*) job_name="${1#--job_name=}" ;;
    --log_dir=*) log_dir="${1#--log_dir=}" ;;
    --signal_seconds=*) signal_seconds="${1#--signal_seconds=}" ;;
    --sbatch_arg=*) sbatch_args+=("${1#--sbatch_arg=}") ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) die "unknown option $1 ($usage)" ;;
    *) [[ -z "$job" ]] || die "one job only, got '$job' and '$1' ($usage)"; job="$1" ;;
  esac
  shift
done
check_job "$job" "$usage"
[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes=N is required (a positive integer): $usage"
for value in "$gpus_per_node" "$cpu_devices_per_task" "$cpus_per_task" "$signal_seconds" ${cpu_tasks_per_node:+"$cpu_tasks_per_node"}; do
  [[ "$value" =~ ^[0-9]+$ ]] || die "counts must be integers, got '$value': $usage"
done
[[ $# -gt 0 ]] || die "no $job flags after --: $usage"

if [[ -n "$cpu_tasks_per_node" ]]; then
  tasks_per_node="$cpu_tasks_per_node"
  devices_per_task="$cpu_devices_per_task"
else
  tasks_per_node="$gpus_per_node"
  devices_per_task=1
fi
env_lines=""
if ! is_multi_process "$job"; then
  [[ "$nodes" == 1 ]] || die "$job runs as one process on one node; use --nodes=1 ($usage)"
  devices_per_task=$((tasks_per_node * devices_per_task))  # the one task uses every device of the node
  tasks_per_node=1
else
  env_lines="export SMDIFF_DISTRIBUTED=1"$'\n'
fi
expected_devices=$((nodes * tasks_per_node * devices_per_task))

repo="$(repo_root)"
sbatch_lines="#SBATCH --job-name=$job_name
#SBATCH --nodes=$nodes
#SBATCH --ntasks-per-node=$tasks_per_node
#SBATCH --cpus-per-task=$cpus_per_task
#SBATCH --signal=B:TERM@$signal_seconds
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=$log_dir/$job_name-%j.log"
if [[ -n "$cpu_tasks_per_node" ]]; then
  env_lines+="export JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=$cpu_devices_per_task"$'\n'
  [[ "$tasks_per_node" == 1 ]] && env_lines+="export XLA_FLAGS=--xla_force_host_platform_device_count=$devices_per_task"$'\n'
else
  sbatch_lines+=$'\n'"#SBATCH --gpus-per-node=$gpus_per_node"
fi
[[ -z "$partition" ]] || sbatch_lines+=$'\n'"#SBATCH --partition=$partition"
[[ -z "$time_limit" ]] || sbatch_lines+=$'\n'"#SBATCH --time=$time_limit"

job_script="#!/usr/bin/env bash
$sbatch_lines
set -uo pipefail
${env_lines}export SMDIFF_EXPECTED_DEVICES=$expected_devices
# jax starts the coordinator on the step's first node, where this script runs: a port free here now.
JAX_COORDINATOR_PORT=\$($(quoted "$PYTHON") -c 'import socket; s = socket.socket(); s.bind((\"\", 0)); print(s.getsockname()[1])')
export JAX_COORDINATOR_PORT
cd $(quoted "$repo")
# The pre-timeout signal reaches this script (B:); pass it to every task of the step (srun itself would
# end the step on TERM), which saves and stops, then requeue the job to resume from that checkpoint.
preempted=0
trap 'preempted=1; scancel --signal=TERM \"\$SLURM_JOB_ID.0\"' TERM
srun --kill-on-bad-exit=1 $(quoted "$PYTHON" -m smdiff.cli "$job" "$@") &
step=\$!
wait \"\$step\"
status=\$?
while kill -0 \"\$step\" 2>/dev/null; do
  wait \"\$step\"
  status=\$?
done
if [[ \$preempted == 1 ]]; then
  echo \"pre-timeout signal: the job stopped (status \$status); requeueing it to resume\"
  scontrol requeue \"\$SLURM_JOB_ID\"
fi
exit \$status
"

echo "job script:"
printf '%s' "$job_script"
run sbatch ${sbatch_args[@]+"${sbatch_args[@]}"} <<<"$job_script"
