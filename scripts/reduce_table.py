"""The token-reduction table of docs/results.md from probe JSON files (written by
`longvid probe ... --out DIR`): one row per token method, one column per task x extension,
accuracy % with its Wilson 95 % interval and n.

    python scripts/reduce_table.py DIR [DIR ...] --frames 256
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=256)
    args = ap.parse_args()
    rows = []
    for d in args.dirs:
        for f in sorted(d.glob("*_short.json")):
            rows += [r for r in json.loads(f.read_text())["rows"] if r.get("frames") == args.frames and "n" in r]
    tasks = [t for t in ("needle", "order", "count") if any(r["task"] == t for r in rows)]
    extends = list(dict.fromkeys(r["extend"] for r in rows))
    methods = list(dict.fromkeys(r["pooling"] for r in rows))
    cols = [(t, e) for t in tasks for e in extends]
    print("| method | visual tokens | " + " | ".join(f"{t}, {e}" for t, e in cols) + " |")
    print("|---|---:|" + "---:|" * len(cols))
    for m in methods:
        cells, tokens = [], ""
        for t, e in cols:
            hit = [r for r in rows if (r["task"], r["extend"], r["pooling"]) == (t, e, m)]
            if hit:
                r = hit[0]
                tokens = r["visual_tokens"]
                cells.append(f"{100 * r['accuracy']:.0f} ({100 * r['low']:.0f}-{100 * r['high']:.0f}, n={r['n']})")
            else:
                cells.append("")
        print(f"| {m} | {tokens} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
