#!/usr/bin/env bash
# Reproduces the tables of docs/results.md on the bundled testbed (1 torch thread per probe;
# the three tasks run two at a time on this 2-core machine). About 25 minutes here.
#   bash scripts/results.sh [SAMPLES]        # default 16 items per cell
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-16}
OUT=docs/results
mkdir -p "$OUT"
L=.venv/bin/longvid
FRAMES=16,32,64,128,256,512
for task in needle count order; do
  echo "$L probe --task $task --frames $FRAMES --sweep --samples $N --out $OUT" > "$OUT/${task}_short.cmd"
done
$L probe --task needle --frames $FRAMES --sweep --samples "$N" --out "$OUT" > /dev/null &
$L probe --task count --frames $FRAMES --sweep --samples "$N" --out "$OUT" > /dev/null
wait
$L probe --task order --frames $FRAMES --sweep --samples "$N" --out "$OUT" > /dev/null &
echo "$L probe --task needle --frames 16,64,256 --depths 0:1:0.25 --extend none,visual-yarn,visual-pi --samples 6 --out $OUT/depth" > "$OUT/depth.cmd"
$L probe --task needle --frames 16,64,256 --depths 0:1:0.25 --extend none,visual-yarn,visual-pi --samples 6 --out "$OUT/depth" > /dev/null
wait
echo "tables in $OUT; docs/results.md quotes them with these commands"
