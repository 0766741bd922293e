"""The results file of a benchmark run: one JSON object per item and line, appended as items
complete, read back with every valid line kept, and tied to the settings that produced it.

- **Repair**: a line that is not a JSON object with an ``id`` (a half-written last line, a
  corrupted byte, a stray ``null``) is set aside in ``OUT.bad`` and reported; every valid
  line, before or after it, is kept. On resume every line is also vetted (``check``): an id no
  item has, a field of the wrong type, a grade that does not follow from the response and the
  annotations, or two answered lines for one item are set aside too, and those items are
  asked again: nothing read back is trusted because it is there.
- **One writer**: ``lock`` keeps a second run off a results file while one writes it.
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


def read_results(path: Path, repair: bool = False, check=None) -> list[dict]:
    """The valid records of a results file, in file order. ``repair``: rewrite the file with
    the valid lines only (each ending in a newline, so appending continues cleanly) and move
    the others to ``OUT.bad``, with a warning that counts them. ``check(record)``: None for a
    line to keep, else why not (and an item answered on two lines keeps neither)."""
    path = Path(path)
    if not path.exists():
        return []
    check_results_path(path)
    raw = path.read_bytes()
    records, kept, bad, reasons = [], [], [], {}
    lines = [(ln if ln.endswith(b"\n") else ln + b"\n") for ln in raw.splitlines(keepends=True) if ln.strip()]
    parsed = [_record(ln) for ln in lines]
    answered: dict[str, int] = {}
    if check is not None:  # an item answered twice: neither line is trusted
        for r in parsed:
            if r is not None and "error" not in r:
                answered[r["id"]] = answered.get(r["id"], 0) + 1
    for line, record in zip(lines, parsed, strict=True):
        why = "unreadable" if record is None else (check(record) if check is not None else None)
        if why is None and check is not None and answered.get(record["id"], 0) > 1 and "error" not in record:
            why = "the item is answered on more than one line"
        if why is not None:
            bad.append(line)
            reasons[why] = reasons.get(why, 0) + 1
            continue
        records.append(record)
        kept.append(line)
    if repair and (bad or b"".join(kept) != raw):
        if bad:
            aside = path.with_name(path.name + ".bad")
            with aside.open("ab") as f:
                f.writelines(bad)
            said = "; ".join(f"{n} {why}" for why, n in reasons.items())
            warnings.warn(f"{path}: {len(bad)} line(s) set aside in {aside} ({said}); their items are asked again",
                          stacklevel=2)  # fmt: skip
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


class lock:
    """Held while a run appends to ``path``: a second run on the same file is refused at once
    (an advisory ``flock`` on ``PATH.lock``, released when the process ends however it ends)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).with_name(Path(path).name + ".lock")
        self.handle = None

    def __enter__(self) -> lock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise InvalidRequestError(
                f"another run is writing {self.path.with_suffix('')} now; wait for it, or pass another --out"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
        self.path.unlink(missing_ok=True)


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
