"""The table behind docs/results.md's readings: per task, accuracy % (Wilson 95 %, n) at the
training length (16 frames) and at 16x (256), for each extension and for uniform /
progressive pooling, from probe JSON files.

    python scripts/claims_table.py DIR [DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    rows = []
    for d in map(Path, sys.argv[1:]):
        for f in sorted(d.glob("*_short.json")):
            rows += [r for r in json.loads(f.read_text())["rows"] if "n" in r]
    cols = [(16, "none"), *((256, e) for e in ("none", "linear", "yarn", "visual-pi", "visual-yarn"))]
    print("| task | pooling | " + " | ".join(f"{f} frames, {e}" for f, e in cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    for task in ("needle", "order", "count"):
        for pooling in ("uniform", "progressive"):
            cells = []
            for frames, extend in cols:
                hit = [
                    r
                    for r in rows
                    if (r["task"], r["frames"], r["extend"], r["pooling"]) == (task, frames, extend, pooling)
                ]
                cells.append(f"{100 * hit[0]['accuracy']:.0f} ({100 * hit[0]['low']:.0f}-{100 * hit[0]['high']:.0f})"
                             if hit else "")  # fmt: skip
            print(f"| {task} | {pooling} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
