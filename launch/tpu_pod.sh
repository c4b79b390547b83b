#!/usr/bin/env bash
# Run on every worker of a Cloud TPU pod at once (gcloud ... ssh --worker=all). Each worker runs one
# process; SMDIFF_DISTRIBUTED=1 makes `smdiff train` call jax.distributed.initialize(), which finds the
# pod's coordinator by itself, and each worker reads its own slice of the data.
#
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE [--project=P] [--repo_dir=smdiff] [--dry_run] \
#                     -- --gin_file=... --workdir=gs://bucket/run
#
# The repository (and a Python with smdiff) must already be on every worker at --repo_dir.
# Environment: PYTHON (the workers' python, default python3), DRY_RUN=1.
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 --tpu=NAME --zone=ZONE [--project=P] [--repo_dir=DIR] [--dry_run] -- <smdiff train flags>"
tpu="" zone="" project="" repo_dir=smdiff
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tpu=*) tpu="${1#--tpu=}" ;;
    --zone=*) zone="${1#--zone=}" ;;
    --project=*) project="${1#--project=}" ;;
    --repo_dir=*) repo_dir="${1#--repo_dir=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) die "unknown option $1 ($usage)" ;;
  esac
  shift
done
[[ -n "$tpu" && -n "$zone" ]] || die "--tpu and --zone are required: $usage"
[[ $# -gt 0 ]] || die "no train flags after --: $usage"

remote_command="cd $(quoted "$repo_dir") && SMDIFF_DISTRIBUTED=1 $(quoted "$PYTHON" -m smdiff.cli train "$@")"
gcloud_args=(compute tpus tpu-vm ssh "$tpu" "--zone=$zone" --worker=all "--command=$remote_command")
[[ -z "$project" ]] || gcloud_args+=("--project=$project")
run gcloud "${gcloud_args[@]}"
