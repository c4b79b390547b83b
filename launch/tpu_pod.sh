#!/usr/bin/env bash
# Run a job on every worker of a Cloud TPU pod at once (gcloud ... ssh --worker=all). Each worker runs
# one process with all of its TPU chips; SMDIFF_DISTRIBUTED=1 makes a multi-process job (train, sample,
# pianoroll-eval, reverse-process) call jax.distributed.initialize(), which finds the pod's coordinator by itself; each
# worker reads its rows of every global batch (train) or makes its own chunks (the others).
# --expected_devices=N (the pod's chip count) stops a run that sees fewer.
#
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE [--project=P] [--repo_dir=smdiff] [--expected_devices=N] \
#                     [--dry_run] JOB -- --gin_file=... --workdir=gs://bucket/run
#
# JOB: train, sample, pianoroll-eval, reverse-process (every worker), or evaluate, build (worker 0).
# The repository (and a Python with smdiff) must already be on every worker at --repo_dir.
# Environment: PYTHON (the workers' python, default python3), DRY_RUN=1.
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 --tpu=NAME --zone=ZONE [--project=P] [--repo_dir=DIR] [--expected_devices=N] [--dry_run] JOB -- <smdiff JOB flags>"
job="" tpu="" zone="" project="" repo_dir=smdiff expected_devices=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tpu=*) tpu="${1#--tpu=}" ;;
    --zone=*) zone="${1#--zone=}" ;;
    --project=*) project="${1#--project=}" ;;
    --repo_dir=*) repo_dir="${1#--repo_dir=}" ;;
    --expected_devices=*) expected_devices="${1#--expected_devices=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) die "unknown option $1 ($usage)" ;;
    *) [[ -z "$job" ]] || die "one job only, got '$job' and '$1' ($usage)"; job="$1" ;;
  esac
  shift
done
[[ -n "$tpu" && -n "$zone" ]] || die "--tpu and --zone are required: $usage"
check_job "$job" "$usage"
[[ $# -gt 0 ]] || die "no $job flags after --: $usage"

env_vars=""
workers=0
if is_multi_process "$job"; then
  env_vars="SMDIFF_DISTRIBUTED=1 "
  workers=all
fi
[[ -z "$expected_devices" ]] || env_vars+="SMDIFF_EXPECTED_DEVICES=$(quoted "$expected_devices") "
remote_command="cd $(quoted "$repo_dir") && $env_vars$(quoted "$PYTHON" -m smdiff.cli "$job" "$@")"
gcloud_args=(compute tpus tpu-vm ssh "$tpu" "--zone=$zone" "--worker=$workers" "--command=$remote_command")
[[ -z "$project" ]] || gcloud_args+=("--project=$project")
run gcloud "${gcloud_args[@]}"
