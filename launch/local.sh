#!/usr/bin/env bash
# Run a job on this machine with whatever devices jax finds (CPU, one GPU, all GPUs), as one process or
# as N processes joined by jax.distributed (--processes=N; e.g. CPU devices to try a multi-host layout).
#
#   launch/local.sh [--processes=N] [--dry_run] JOB -- <smdiff JOB flags>
#   launch/local.sh train -- --gin_file=gin/experiments/<run>.gin --workdir=/tmp/run
#
# JOB: train, sample, evaluate, reverse-process, pianoroll-eval or build. With --processes=N every process
# gets SMDIFF_DISTRIBUTED=1, a coordinator on a free localhost port and its id; SMDIFF_EXPECTED_DEVICES
# (if set) passes through. Environment: PYTHON (default python3), DRY_RUN=1 (same as --dry_run).
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 [--processes=N] [--dry_run] JOB -- <smdiff JOB flags>"
job="" processes=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --processes=*) processes="${1#--processes=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) die "unknown option $1 ($usage)" ;;
    *) [[ -z "$job" ]] || die "one job only, got '$job' and '$1' ($usage)"; job="$1" ;;
  esac
  shift
done
check_job "$job" "$usage"
[[ "$processes" =~ ^[1-9][0-9]*$ ]] || die "--processes must be a positive integer: $usage"
[[ $# -gt 0 ]] || die "no $job flags after --: $usage"
if [[ "$processes" -gt 1 ]] && ! is_multi_process "$job"; then
  die "$job runs as one process (it does not join jax.distributed); drop --processes ($usage)"
fi

cd "$(repo_root)"
if [[ "$processes" == 1 ]]; then
  run "$PYTHON" -m smdiff.cli "$job" "$@"
  exit
fi
port="$(free_port)"
pids=()
for ((index = 0; index < processes; index++)); do
  command=(env SMDIFF_DISTRIBUTED=1 "JAX_COORDINATOR_ADDRESS=localhost:$port" "SMDIFF_NUM_PROCESSES=$processes"
           "SMDIFF_PROCESS_ID=$index" "$PYTHON" -m smdiff.cli "$job" "$@")
  DRY_RUN=1 run "${command[@]}"  # print it here, in order
  if [[ "$DRY_RUN" != 1 ]]; then
    "${command[@]}" &
    pids+=("$!")
  fi
done
status=0
for pid in ${pids[@]+"${pids[@]}"}; do
  wait "$pid" || status=$?
done
exit "$status"
