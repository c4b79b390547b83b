#!/usr/bin/env bash
# Every throughput benchmark at paper size on the accelerator present, within 8 minutes, from the source
# tree (no install; needs only jax, flax, optax, numpy). Writes one markdown file to append to
# benchmarks/RESULTS.md:
#   bash benchmarks/accelerator_check.sh [OUT_FILE] [extra flags of benchmarks.accelerator_check]
#   cat OUT_FILE >> benchmarks/RESULTS.md
# The 420 s budget leaves one section's time (compile + timing) of the 8 minutes for the last section.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-accelerator_check.md}"
shift || true
PYTHONPATH=. timeout 480 python -m benchmarks.accelerator_check --size=paper --budget_s=420 --out="$out" "$@"
echo "wrote $out"
