#!/usr/bin/env bash
# The KV-budget tables of docs/results.md: needle and order at 256, 1,024 and 4,096 frames under
# the budget of 256 uniform frames (4,096 visual tokens a layer), 100 items a cell, 1 torch thread
# per run; the two tasks run side by side. The full cache at 4,096 frames is a 20-item sweep
# (each of its prefills attends over 65k tokens: about 40 s here).
#   bash scripts/kv_budget_results.sh [OUT]      (default docs/results/budget)
set -euo pipefail
out=${1:-docs/results/budget}
run() {
  local task=$1
  longvid probe --task "$task" --frames 1024 --extend none,visual-yarn --pooling uniform --kv-budget 4096 \
    --subsample 256 --reduce merge --keep 0.25 --samples 100 --threads 1 --out "$out/1024"
  longvid probe --task "$task" --frames 4096 --extend none,visual-yarn --pooling budget:4096,subsample:256 \
    --reduce merge --keep 0.0625 --samples 100 --threads 1 --out "$out/4096"
  longvid probe --task "$task" --frames 256 --extend none,visual-yarn --pooling uniform --samples 100 \
    --threads 1 --out "$out/256"
  longvid probe --task "$task" --frames 4096 --extend visual-yarn --pooling uniform --samples 20 \
    --threads 1 --out "$out/4096_full"
}
run needle > "$out.needle.log" 2>&1 &
run order > "$out.order.log" 2>&1 &
wait
python scripts/budget_table.py "$out"
