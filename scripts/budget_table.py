"""The KV-budget table of docs/results.md from the probe JSON files that
``scripts/kv_budget_results.sh`` writes (``OUT/<frames>/<task>_short.json``).

One row per task x frame count x extension; columns: the full cache, the budget with
compression, uniform subsampling to the frames that fit the budget, and the merge reducer at
the budget's token count; accuracy % with its Wilson 95 % interval and n.

    python scripts/budget_table.py docs/results/budget
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TASKS = ("needle", "order")
COLUMNS = (("full cache", "uniform"), ("budget (compressed)", "budget:"), ("subsample", "subsample:"),
           ("merge", "merge:"))  # fmt: skip


def load_rows(folder: Path) -> list[dict]:
    rows = []
    for f in sorted(folder.glob("*/*_short.json")):
        rows += [r for r in json.loads(f.read_text())["rows"] if "n" in r]
    return rows


def cell(rows: list[dict], task: str, frames: int, extend: str, prefix: str) -> str:
    """The cell of one method; at the frames where the video fits the budget, the full cache is
    what every method keeps (their columns show it)."""
    hits = [r for r in rows if (r["task"], r["frames"], r["extend"]) == (task, frames, extend)
            and (r["pooling"] == prefix if prefix == "uniform" else r["pooling"].startswith(prefix))]  # fmt: skip
    if not hits:
        return ""
    r = max(hits, key=lambda r: r["n"])
    return f"{100 * r['accuracy']:.0f} ({100 * r['low']:.0f}-{100 * r['high']:.0f}, n={r['n']})"


def table(rows: list[dict]) -> list[str]:
    frames = sorted({r["frames"] for r in rows})
    extends = list(dict.fromkeys(r["extend"] for r in rows))
    lines = [
        "| task | frames | extension | " + " | ".join(name for name, _ in COLUMNS) + " |",
        "|---|---:|---|" + "---:|" * len(COLUMNS),
    ]
    for task in TASKS:
        for n in frames:
            for e in extends:
                cells = [cell(rows, task, n, e, prefix) for _, prefix in COLUMNS]
                if any(cells):
                    lines.append(f"| {task} | {n} | {e} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    args = ap.parse_args()
    print("\n".join(table(load_rows(args.folder))))


if __name__ == "__main__":
    main()
