"""The results file of a benchmark run: one JSON object per item and line, appended as items
complete, read back with every valid line kept, and tied to the settings that produced it.

- **Repair**: a line that is not a JSON object with an ``id`` (a half-written last line, a
  corrupted byte, a stray ``null``) is set aside in ``OUT.bad`` and reported; every valid
  line, before or after it, is kept.
- **Identity**: ``OUT`` with ``.run.json`` records what produced the answers (benchmark, data
  folder, model, every option that changes an answer, longvid's version). A run whose identity
  differs from the file's is refused with the differences named (or goes to a new file on
  request): answers computed one way are never summarized under another's settings.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from longvid.errors import InvalidRequestError


def _record(line: bytes) -> dict | None:
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("id"), str) else None


def check_results_path(path: Path) -> None:
    if path.is_dir():
        raise InvalidRequestError(f"{path} is a folder; --out names a results file (e.g. {path}/results.jsonl)")


def read_results(path: Path, repair: bool = False) -> list[dict]:
    """The valid records of a results file, in file order. ``repair``: rewrite the file with
    the valid lines only (each ending in a newline, so appending continues cleanly) and move
    the others to ``OUT.bad``, with a warning that counts them."""
    path = Path(path)
    if not path.exists():
        return []
    check_results_path(path)
    raw = path.read_bytes()
    records, kept, bad = [], [], []
    for line in raw.splitlines(keepends=True):
        if not line.strip():
            continue
        record = _record(line)
        if record is None:
            bad.append(line if line.endswith(b"\n") else line + b"\n")
            continue
        records.append(record)
        kept.append(line if line.endswith(b"\n") else line + b"\n")
    if repair and (bad or b"".join(kept) != raw):
        if bad:
            aside = path.with_name(path.name + ".bad")
            with aside.open("ab") as f:
                f.writelines(bad)
            warnings.warn(f"{path}: {len(bad)} unreadable line(s) set aside in {aside}", stacklevel=2)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
    return records


def latest_by_id(records: list[dict]) -> dict[str, dict]:
    """The last record of each item (a retried item's newer line wins)."""
    return {r["id"]: r for r in records}


def merge(out: Path, parts: list[Path], order: list[str]) -> None:
    """Merge per-rank files (and an existing merged file) into ``out``, in benchmark order."""
    by_id = latest_by_id(read_results(out))
    for part in parts:
        by_id.update(latest_by_id(read_results(part)))
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for key in order:
            if key in by_id:
                f.write(json.dumps(by_id[key]) + "\n")
    tmp.replace(out)


def identity_path(out: Path) -> Path:
    return out.with_suffix(".run.json")


def claim(out: Path, identity: dict, existing: list[Path]) -> None:
    """Tie ``out`` to ``identity``: write it when the run is new; refuse, naming what
    differs, when ``out`` already holds answers computed otherwise (or with no identity)."""
    side = identity_path(out)
    have_answers = any(read_results(p) for p in existing)
    if side.exists():
        recorded = json.loads(side.read_text())
        changed = sorted(k for k in set(recorded) | set(identity) if recorded.get(k) != identity.get(k))
        if changed and have_answers:
            shown = "; ".join(f"{k}: {recorded.get(k)!r} then, {identity.get(k)!r} now" for k in changed)
            raise InvalidRequestError(
                f"{out} holds answers from other settings ({shown}); pass --new-file to write a new "
                "results file beside it, or another --out"
            )
    elif have_answers:
        raise InvalidRequestError(
            f"{out} holds answers but no record of the settings that produced them ({side.name}); "
            "pass --new-file to write a new results file beside it, or another --out"
        )
    tmp = side.with_name(f"{side.name}.{os.getpid()}.tmp")  # ranks write the same content
    tmp.write_text(json.dumps(identity, indent=1))
    os.replace(tmp, side)


def free_path(out: Path, identity: dict) -> Path:
    """``out`` if it is new or was written with ``identity``, else the first of
    ``stem-2.jsonl``, ``stem-3.jsonl``, ... that is."""
    k = 1
    candidate = out
    while True:
        side = identity_path(candidate)
        if not candidate.exists() and not side.exists():
            return candidate
        if side.exists() and json.loads(side.read_text()) == identity:
            return candidate
        k += 1
        candidate = out.with_name(f"{out.stem}-{k}{out.suffix}")
