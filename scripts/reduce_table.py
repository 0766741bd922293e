"""Token-reduction tables of docs/results.md from probe JSON files (written by
`longvid probe ... --out DIR`).

One frame count: one row per token method, one column per task x extension, accuracy % with
its Wilson 95 % interval and n:

    python scripts/reduce_table.py DIR [DIR ...] --frames 256

Several frame counts (`--frames 16,64,256`): the budget table, one row per method with its
share of the full token count, one column per frame count holding the tasks' accuracies
(first extension found):

    python scripts/reduce_table.py docs/results/budgets --frames 16,64,256
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TASKS = ("needle", "order", "count")


def load_rows(dirs: list[Path]) -> list[dict]:
    rows = []
    for d in dirs:
        for f in sorted(d.glob("*_short.json")):
            rows += [r for r in json.loads(f.read_text())["rows"] if "n" in r]
    return rows


def one_length_table(rows: list[dict], frames: int) -> list[str]:
    rows = [r for r in rows if r.get("frames") == frames]
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    extends = list(dict.fromkeys(r["extend"] for r in rows))
    methods = list(dict.fromkeys(r["pooling"] for r in rows))
    cols = [(t, e) for t in tasks for e in extends]
    lines = [
        "| method | visual tokens | " + " | ".join(f"{t}, {e}" for t, e in cols) + " |",
        "|---|---:|" + "---:|" * len(cols),
    ]
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
        lines.append(f"| {m} | {tokens} | " + " | ".join(cells) + " |")
    return lines


def budget_table(rows: list[dict], frame_counts: list[int]) -> list[str]:
    """Methods sorted by their share of uniform's visual tokens (the separator token aside)."""
    extend = rows[0]["extend"]
    rows = [r for r in rows if r["extend"] == extend and r.get("frames") in frame_counts]
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    full = {r["frames"]: r["visual_tokens"] - 1 for r in rows if r["pooling"] == "uniform"}

    def share(method: str) -> float:
        r = next(r for r in rows if r["pooling"] == method)
        return (r["visual_tokens"] - 1) / full[r["frames"]]

    methods = sorted(dict.fromkeys(r["pooling"] for r in rows), key=lambda m: -share(m))
    lines = [
        "| method | share | " + " | ".join(f"{f} frames: {' / '.join(tasks)}" for f in frame_counts) + " |",
        "|---|---:|" + "---|" * len(frame_counts),
    ]
    for m in methods:
        cells = []
        for f in frame_counts:
            acc = []
            for t in tasks:
                hit = [r for r in rows if (r["task"], r["frames"], r["pooling"]) == (t, f, m)]
                acc.append(f"{100 * hit[0]['accuracy']:.0f}" if hit else "-")
            cells.append(" / ".join(acc))
        lines.append(f"| {m} | {100 * share(m):g} % | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--frames", default="256", help="one frame count, or several comma-separated")
    args = ap.parse_args()
    frame_counts = [int(f) for f in args.frames.split(",")]
    rows = load_rows(args.dirs)
    if not rows:
        raise SystemExit(f"no probe rows in {', '.join(map(str, args.dirs))}")
    lines = one_length_table(rows, frame_counts[0]) if len(frame_counts) == 1 else budget_table(rows, frame_counts)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
