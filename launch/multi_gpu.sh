#!/usr/bin/env bash
# Run a job on every GPU of one node in ONE process: jax sees all of them and the mesh's `data` axis
# spans them (no jax.distributed needed). JAX_PLATFORMS=cuda makes a missing GPU an error, not a CPU run,
# and SMDIFF_EXPECTED_DEVICES makes a missing GPU an error at start (jobs that check it: train, sample,
# pianoroll-eval, reverse-process).
#
#   launch/multi_gpu.sh [--gpus=0,1,2,3] [--dry_run] JOB -- <smdiff JOB flags>
#
# JOB: train, sample, evaluate, reverse-process, pianoroll-eval or build.
# Environment: PYTHON (default python3), DRY_RUN=1 (same as --dry_run).
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 [--gpus=LIST] [--dry_run] JOB -- <smdiff JOB flags>"
job="" gpus=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpus=*) gpus="${1#--gpus=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) die "unknown option $1 ($usage)" ;;
    *) [[ -z "$job" ]] || die "one job only, got '$job' and '$1' ($usage)"; job="$1" ;;
  esac
  shift
done
check_job "$job" "$usage"
[[ $# -gt 0 ]] || die "no $job flags after --: $usage"

env_vars=(JAX_PLATFORMS=cuda)
if [[ -n "$gpus" ]]; then
  IFS=, read -r -a gpu_list <<<"$gpus"
  env_vars+=("CUDA_VISIBLE_DEVICES=$gpus" "SMDIFF_EXPECTED_DEVICES=${#gpu_list[@]}")
elif [[ "$DRY_RUN" != 1 ]] && command -v nvidia-smi >/dev/null; then
  env_vars+=("SMDIFF_EXPECTED_DEVICES=$(nvidia-smi -L | grep -c '^GPU')")
fi
if [[ "$DRY_RUN" != 1 ]] && command -v nvidia-smi >/dev/null; then
  nvidia-smi -L
fi

cd "$(repo_root)"
run env "${env_vars[@]}" "$PYTHON" -m smdiff.cli "$job" "$@"
