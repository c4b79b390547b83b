# shellcheck shell=bash
# Shared by the launchers (sourced, not run): the job names, dry-run handling, printing commands, errors.
# A launcher's own options and the job name come before `--`; everything after `--` goes to
# `smdiff <job>` unchanged.

# DRY_RUN=1 in the environment, or --dry_run, prints what would run instead of running it.
DRY_RUN="${DRY_RUN:-0}"
# The Python that has smdiff installed (e.g. .venv/bin/python).
PYTHON="${PYTHON:-python3}"

# The jobs a launcher starts (`smdiff <job>`).
JOBS=(train sample evaluate reverse-process pianoroll-eval build)
# The jobs that join several processes with jax.distributed (smdiff/training/topology.py, called from
# their main): train splits every batch; sample, pianoroll-eval and reverse-process split their chunks
# (each process makes its own on all of its local devices; smdiff/sampling/shards.py). The others run as
# one process that uses every device it sees: evaluate only scores saved samples (from any number of
# processes), and the latent build (`build`) is TFDS's download_and_prepare, which writes each split
# from one process (TFDS shards a build over workers only through Apache Beam, which the pinned stack
# cannot install).
MULTI_PROCESS_JOBS=(train sample pianoroll-eval reverse-process)

die() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# check_job NAME USAGE: exit with an error (and USAGE) unless NAME is a launchable job.
check_job() {
  local job
  [[ -n "$1" ]] || die "no job given; one of: ${JOBS[*]} ($2)"
  for job in "${JOBS[@]}"; do
    [[ "$1" == "$job" ]] && return 0
  done
  die "unknown job '$1'; one of: ${JOBS[*]} ($2)"
}

# is_multi_process NAME: whether the job joins several processes with jax.distributed.
is_multi_process() {
  local job
  for job in "${MULTI_PROCESS_JOBS[@]}"; do
    [[ "$1" == "$job" ]] && return 0
  done
  return 1
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

# free_port: a TCP port free on this machine now (for a coordinator started right after); any Python
# will do (python3 where PYTHON names a machine's other Python, as in dry runs).
free_port() {
  local python="$PYTHON"
  command -v "$python" >/dev/null || python=python3
  "$python" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

# The repository root (the directory above launch/).
repo_root() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}
