#!/usr/bin/env bash
# Train on this machine with whatever devices jax finds (CPU, one GPU, all GPUs).
#
#   launch/local.sh [--dry_run] -- --gin_file=gin/experiments/<run>.gin --workdir=/tmp/run
#
# Environment: PYTHON (default python3), DRY_RUN=1 (same as --dry_run).
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 [--dry_run] -- <smdiff train flags>"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) die "unknown option $1 ($usage)" ;;
  esac
  shift
done
[[ $# -gt 0 ]] || die "no train flags after --: $usage"

cd "$(repo_root)"
run "$PYTHON" -m smdiff.cli train "$@"
