#!/usr/bin/env bash
# Train on every GPU of one node in ONE process: jax sees all of them and the mesh's `data` axis spans
# them (no jax.distributed needed). JAX_PLATFORMS=cuda makes a missing GPU an error, not a CPU run.
#
#   launch/multi_gpu.sh [--gpus=0,1,2,3] [--dry_run] -- --gin_file=... --workdir=...
#
# Environment: PYTHON (default python3), DRY_RUN=1 (same as --dry_run).
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 [--gpus=LIST] [--dry_run] -- <smdiff train flags>"
gpus=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpus=*) gpus="${1#--gpus=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) die "unknown option $1 ($usage)" ;;
  esac
  shift
done
[[ $# -gt 0 ]] || die "no train flags after --: $usage"

env_vars=(JAX_PLATFORMS=cuda)
if [[ -n "$gpus" ]]; then
  env_vars+=("CUDA_VISIBLE_DEVICES=$gpus")
fi
if [[ "$DRY_RUN" != 1 ]] && command -v nvidia-smi >/dev/null; then
  nvidia-smi -L
fi

cd "$(repo_root)"
run env "${env_vars[@]}" "$PYTHON" -m smdiff.cli train "$@"
