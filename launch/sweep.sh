#!/usr/bin/env bash
# A grid sweep over gin bindings: one run per point of the grid, each in its own workdir named from
# the point, started one after another through a launcher (local.sh by default; slurm.sh submits jobs).
#
#   launch/sweep.sh --root=/tmp/sweep --grid='OptimizerConfig.learning_rate=1e-3,3e-4' \
#                   --grid='train.seed=0,1' [--launcher=slurm.sh --launcher_arg=--nodes=2] [--dry_run] \
#                   -- --gin_file=gin/experiments/<run>.gin
#
# gives 4 runs, e.g. workdir /tmp/sweep/learning_rate-3e-4_seed-1 with
# --gin_bindings=OptimizerConfig.learning_rate=3e-4 --gin_bindings=train.seed=1. Values are split at
# commas (so a value cannot contain one). Environment: PYTHON, DRY_RUN=1 (passed on to the launcher,
# which then prints each run's command instead of running it).
set -euo pipefail
# shellcheck source=launch/lib.sh
source "$(dirname "$0")/lib.sh"

usage="usage: $0 --root=DIR --grid='binding=v1,v2,...' [--grid=...] [--launcher=local.sh] [--launcher_arg=ARG]... [--dry_run] -- <common smdiff train flags>"
root="" launcher=local.sh
grids=()
launcher_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --root=*) root="${1#--root=}" ;;
    --grid=*) grids+=("${1#--grid=}") ;;
    --launcher=*) launcher="${1#--launcher=}" ;;
    --launcher_arg=*) launcher_args+=("${1#--launcher_arg=}") ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; break ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) die "unknown option $1 ($usage)" ;;
  esac
  shift
done
[[ -n "$root" ]] || die "--root is required: $usage"
[[ ${#grids[@]} -gt 0 ]] || die "give at least one --grid: $usage"
[[ -x "$(dirname "$0")/$launcher" ]] || die "no launcher launch/$launcher"

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

export DRY_RUN PYTHON
echo "sweep: ${#points[@]} runs under $root"
for point in "${points[@]}"; do
  IFS="$sep" read -r -a bindings <<<"$point"
  run_name=""
  binding_flags=()
  for binding in "${bindings[@]}"; do
    key="${binding%%=*}"
    value="${binding#*=}"
    # The workdir names the last part of each binding and its value, e.g. learning_rate-0.0003.
    part="${key##*.}-${value}"
    run_name+="${run_name:+_}${part//[^A-Za-z0-9._-]/-}"
    binding_flags+=("--gin_bindings=$binding")
  done
  echo "== $run_name"
  "$(dirname "$0")/$launcher" "${launcher_args[@]}" -- "$@" "--workdir=$root/$run_name" "${binding_flags[@]}"
done
