"""A benchmark of one's own: one JSON object a line (``longvid eval --bench jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path

from longvid.errors import InvalidRequestError
from longvid.evals.answers import LETTERS
from longvid.evals.items import Item


def load_jsonl(path: Path) -> list[Item]:
    """One JSON object a line: ``video`` (a path, relative to the file), ``question``, and
    ``options`` (a list: multiple choice, ``answer`` its letter or its text) or ``answer``
    alone (free text, scored by exact match after normalisation); optional ``id`` (default:
    the line number) and ``split``."""
    items = []
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise InvalidRequestError(f"{path} line {k}: not a JSON object") from None
        if not isinstance(row, dict):
            raise InvalidRequestError(f"{path} line {k}: not a JSON object")
        if not isinstance(row.get("video"), str) or not isinstance(row.get("question"), str):
            raise InvalidRequestError(f'{path} line {k}: needs "video" and "question" as text')
        clip = None
        if "start" in row or "end" in row:
            start, end = row.get("start", 0.0), row.get("end")
            ok = isinstance(start, int | float) and isinstance(end, int | float) and 0 <= start < end
            if not ok or isinstance(start, bool) or isinstance(end, bool):
                raise InvalidRequestError(f"{path} line {k}: a clip needs numbers 0 <= start < end (seconds)")
            clip = (float(start), float(end))
        options = row.get("options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options) or len(options) > 26:
            raise InvalidRequestError(f"{path} line {k}: options must be a list of at most 26 texts")
        if "options" in row and not options:
            raise InvalidRequestError(f"{path} line {k}: options is empty (leave it out for a free-text answer)")
        if len(set(options)) != len(options):
            raise InvalidRequestError(f"{path} line {k}: options repeat")
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise InvalidRequestError(f"{path} line {k}: answer must be text")
        if options and answer is not None:
            if answer in options:
                answer = LETTERS[options.index(answer)]
            elif answer not in LETTERS[: len(options)]:
                raise InvalidRequestError(f"{path} line {k}: answer {answer!r} is neither an option nor its letter")
        split = row.get("split")
        items.append(
            Item(
                id=str(row.get("id", k)),
                video=(path.parent / row["video"]),
                question=row["question"],
                options=tuple(options),
                answer=answer,
                splits={"split": str(split)} if split is not None else {},
                clip=clip,
            )
        )
    if not items:
        raise InvalidRequestError(f"{path}: no questions")
    if any(it.splits for it in items):  # items without a split are a group of their own, named
        for it in items:
            it.splits.setdefault("split", "(none)")
    return items


def prompt_jsonl(item: Item) -> str:
    if not item.options:
        return f"{item.question}\nAnswer with a word or a short phrase."
    options = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(item.options))
    ask = "Answer with the option's letter from the given choices directly."
    return f"Question: {item.question}\nOptions:\n{options}\n{ask}"
