#!/usr/bin/env bash
# A grid sweep over gin bindings: one training run (trial) per point of the grid, each in its own
# workdir named from the point, in W&B group <sweep name> (the root's last part) with the point's
# bindings as tags (and every binding in its W&B config; pass --gin_bindings=train.wandb_project=P).
#
#   launch/sweep.sh --root=/tmp/sweep --grid='OptimizerConfig.learning_rate=1e-3,3e-4' \
#                   --grid='train.seed=0,1' [--gpus=0,1,2,3 | --parallel=K] [--dry_run] \
#                   -- --gin_file=gin/experiments/<run>.gin
#   ... --slurm_array [--partition=P] [--time=T] [--cpus_per_task=C] ...     one array task per trial
#
# gives 4 trials, e.g. workdir /tmp/sweep/learning_rate-3e-4_seed-1 with
# --gin_bindings=OptimizerConfig.learning_rate=3e-4 --gin_bindings=train.seed=1. Values are split at
# commas (so a value cannot contain one).
#   --gpus=LIST    packs the trials on this node: one trial per GPU at a time (CUDA_VISIBLE_DEVICES),
#                  the GPUs working in parallel, each through its share of the trials in turn.
#   --parallel=K   K trials at a time without GPUs (CPU).
#   --slurm_array  submits one SLURM array job, one task (one GPU) per trial.
# Environment: PYTHON, DRY_RUN=1 (prints each trial's command instead of running it).
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 --root=DIR --grid='binding=v1,v2,...' [--grid=...] [--gpus=LIST | --parallel=K | --slurm_array [--partition=P] [--time=T] [--cpus_per_task=C]] [--dry_run] -- <common smdiff train flags>"
root="" gpus="" parallel=1 slurm_array=0 partition="" time_limit="" cpus_per_task=8
grids=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --root=*) root="${1#--root=}" ;;
    --grid=*) grids+=("${1#--grid=}") ;;
    --gpus=*) gpus="${1#--gpus=}" ;;
    --parallel=*) parallel="${1#--parallel=}" ;;
    --slurm_array) slurm_array=1 ;;
    --partition=*) partition="${1#--partition=}" ;;
    --time=*) time_limit="${1#--time=}" ;;
    --cpus_per_task=*) cpus_per_task="${1#--cpus_per_task=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) die "unknown option $1 ($usage)" ;;
  esac
  shift
done
[[ -n "$root" ]] || die "--root is required: $usage"
[[ ${#grids[@]} -gt 0 ]] || die "give at least one --grid: $usage"
[[ "$parallel" =~ ^[1-9][0-9]*$ ]] || die "--parallel must be a positive integer: $usage"
sweep_name="$(basename "$root")"

# Each point is a list of bindings joined by the unit separator (bindings may contain spaces).
sep=$'\x1f'
points=("")
for grid in "${grids[@]}"; do
  [[ "$grid" == *=* ]] || die "--grid must look like name=v1,v2: $grid"
  name="${grid%%=*}"
  IFS=, read -r -a values <<<"${grid#*=}"
  [[ ${#values[@]} -gt 0 ]] || die "--grid $name has no values"
  next=()
  for point in "${points[@]}"; do
    for value in "${values[@]}"; do
      next+=("${point:+$point$sep}$name=$value")
    done
  done
  points=("${next[@]}")
done

# trial_flags POINT: the trial's own train flags (workdir, bindings, W&B group and tags), one per line.
trial_flags() {
  local binding key value part run_name="" tags=""
  local -a bindings
  IFS="$sep" read -r -a bindings <<<"$1"
  for binding in "${bindings[@]}"; do
    key="${binding%%=*}"
    value="${binding#*=}"
    # The workdir names the last part of each binding and its value, e.g. learning_rate-0.0003.
    part="${key##*.}-${value}"
    run_name+="${run_name:+_}${part//[^A-Za-z0-9._-]/-}"
    tags+="${tags:+, }'${key##*.}=${value//[\'\\]/}'"
    echo "--gin_bindings=$binding"
  done
  echo "--gin_bindings=train.wandb_group = '${sweep_name//[\'\\]/}'"
  echo "--gin_bindings=train.wandb_tags = ($tags,)"
  echo "--workdir=$root/$run_name"
}

echo "sweep $sweep_name: ${#points[@]} trials under $root"
if [[ "$slurm_array" == 1 ]]; then
  # Every trial's command, one per line, picked by the array task's index.
  commands=""
  for point in "${points[@]}"; do
    mapfile -t flags < <(trial_flags "$point")
    commands+="$(quoted "$PYTHON" -m smdiff.cli train "$@" "${flags[@]}")"$'\n'
  done
  job_script="#!/usr/bin/env bash
#SBATCH --job-name=$sweep_name
#SBATCH --array=0-$((${#points[@]} - 1))
#SBATCH --ntasks=1
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=$cpus_per_task
#SBATCH --requeue
#SBATCH --output=$root/slurm-%A_%a.log${partition:+
#SBATCH --partition=$partition}${time_limit:+
#SBATCH --time=$time_limit}
set -euo pipefail
export SMDIFF_EXPECTED_DEVICES=1
cd $(quoted "$(repo_root)")
mapfile -t commands <<'TRIALS'
${commands}TRIALS
eval \"\${commands[\$SLURM_ARRAY_TASK_ID]}\"
"
  echo "job script:"
  printf '%s' "$job_script"
  [[ "$DRY_RUN" == 1 ]] || mkdir -p "$root"
  run sbatch <<<"$job_script"
  exit
fi

# Trials packed on this node: slot i (GPU i, or CPU worker i) runs trials i, i + slots, ... in turn.
slots=()
if [[ -n "$gpus" ]]; then
  IFS=, read -r -a slots <<<"$gpus"
else
  for ((slot = 0; slot < parallel; slot++)); do slots+=("cpu$slot"); done
fi
run_slot() {
  local slot_index="$1" trial
  local -a env_vars=() flags
  shift
  if [[ -n "$gpus" ]]; then
    env_vars=("CUDA_VISIBLE_DEVICES=${slots[$slot_index]}" JAX_PLATFORMS=cuda SMDIFF_EXPECTED_DEVICES=1)
  fi
  for ((trial = slot_index; trial < ${#points[@]}; trial += ${#slots[@]})); do
    mapfile -t flags < <(trial_flags "${points[$trial]}")
    run env ${env_vars[@]+"${env_vars[@]}"} "$PYTHON" -m smdiff.cli train "$@" "${flags[@]}" \
      || echo "trial $trial failed (status $?): ${points[$trial]//$sep/ }" >&2
  done
}
cd "$(repo_root)"
pids=()
for ((slot_index = 0; slot_index < ${#slots[@]}; slot_index++)); do
  if [[ "$DRY_RUN" == 1 ]]; then
    run_slot "$slot_index" "$@"
  else
    run_slot "$slot_index" "$@" &
    pids+=("$!")
  fi
done
for pid in ${pids[@]+"${pids[@]}"}; do
  wait "$pid"
done
