#!/usr/bin/env bash
# Submit a multi-node run to SLURM: one process per node, each using all of its node's GPUs. The job
# script sets JAX_COORDINATOR_ADDRESS to the first node of the allocation and SMDIFF_DISTRIBUTED=1, so
# `smdiff train` calls jax.distributed.initialize() (process count and ids come from SLURM's variables)
# and every process reads its own slice of the data.
#
#   launch/slurm.sh --nodes=4 [--gpus_per_node=8] [--partition=P] [--time=24:00:00] [--job_name=smdiff]
#                   [--port=12345] [--dry_run] -- --gin_file=... --workdir=/shared/run
#
# The workdir must be on a filesystem every node sees. Environment: PYTHON, DRY_RUN=1.
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 --nodes=N [--gpus_per_node=G] [--partition=P] [--time=T] [--job_name=NAME] [--port=PORT] [--dry_run] -- <smdiff train flags>"
nodes="" gpus_per_node=8 partition="" time_limit="" job_name=smdiff port=12345
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes=*) nodes="${1#--nodes=}" ;;
    --gpus_per_node=*) gpus_per_node="${1#--gpus_per_node=}" ;;
    --partition=*) partition="${1#--partition=}" ;;
    --time=*) time_limit="${1#--time=}" ;;
    --job_name=*) job_name="${1#--job_name=}" ;;
    --port=*) port="${1#--port=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) die "unknown option $1 ($usage)" ;;
  esac
  shift
done
[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes=N is required (a positive integer): $usage"
[[ $# -gt 0 ]] || die "no train flags after --: $usage"

repo="$(repo_root)"
sbatch_lines="#SBATCH --job-name=$job_name
#SBATCH --nodes=$nodes
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=$gpus_per_node
#SBATCH --output=$job_name-%j.log"
[[ -z "$partition" ]] || sbatch_lines+=$'\n'"#SBATCH --partition=$partition"
[[ -z "$time_limit" ]] || sbatch_lines+=$'\n'"#SBATCH --time=$time_limit"

job_script="#!/usr/bin/env bash
$sbatch_lines
set -euo pipefail
coordinator=\$(scontrol show hostnames \"\$SLURM_JOB_NODELIST\" | head -n 1)
export JAX_COORDINATOR_ADDRESS=\"\$coordinator:$port\"
export SMDIFF_DISTRIBUTED=1
cd $(quoted "$repo")
srun --ntasks-per-node=1 $(quoted "$PYTHON" -m smdiff.cli train "$@")
"

echo "job script:"
printf '%s' "$job_script"
run sbatch <<<"$job_script"
