# shellcheck shell=bash
# Shared by the launchers (sourced, not run): dry-run handling, printing commands, errors.
# A launcher's own options come before `--`; everything after `--` goes to `smdiff train` unchanged.

# DRY_RUN=1 in the environment, or --dry_run, prints what would run instead of running it.
DRY_RUN="${DRY_RUN:-0}"
# The Python that has smdiff installed (e.g. .venv/bin/python).
PYTHON="${PYTHON:-python3}"

die() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# run CMD [ARG...]: print the command, shell-quoted, then run it unless this is a dry run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "$DRY_RUN" != 1 ]]; then
    "$@"
  fi
}

# quoted ARG...: the arguments as one shell-quoted string (for commands run by another shell).
quoted() {
  local out
  printf -v out ' %q' "$@"
  printf '%s' "${out# }"
}

# The repository root (the directory above launch/).
repo_root() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}
