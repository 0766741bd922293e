"""Loaders for four long-video benchmarks, from their official annotation files and a local
folder of videos, with each benchmark's usual multiple-choice prompt and score splits.

Folder layouts (``--data DIR``), as each benchmark distributes them:

- **MLVU** (dev, multiple-choice tasks): ``DIR/MLVU/json/{1_plotQA,2_needle,3_ego,4_count,
  5_order,6_anomaly_reco,7_topic_reasoning}.json`` and videos in ``DIR/MLVU/video/<same
  name>/<video>``. Each entry: ``video``, ``duration``, ``question``, ``candidates``,
  ``answer`` (the candidate's text), ``question_type``. ``DIR`` may also be the ``MLVU``
  folder itself. Scores per task and M-Avg (the mean over tasks, as MLVU reports it).
- **Video-MME**: ``DIR/videomme/test-00000-of-00001.parquet`` (or the same rows as
  ``.json`` / ``.jsonl``) and videos in ``DIR/data/<videoID>.mp4`` (``.MP4``/``.mkv`` too).
  Rows: ``question_id``, ``videoID``, ``duration`` (short / medium / long), ``domain``,
  ``sub_category``, ``task_type``, ``question``, ``options`` ("A. …"), ``answer`` (letter).
  Scores per duration, task type and domain. Parquet needs ``pyarrow`` (``pip install
  pyarrow``).
- **LongVideoBench** (validation): ``DIR/lvb_val.json`` and videos in ``DIR/videos/``. Each
  entry: ``id``, ``video_path``, ``question``, ``candidates`` (or ``option0``..``option4``,
  "N/A" for none), ``correct_choice`` (index), ``duration_group`` (15 / 60 / 600 / 3600 s),
  ``question_category``. Scores per duration group and question category.
- **EgoSchema**: ``DIR/questions.json`` (``q_uid``, ``question``, ``option 0``..``option 4``),
  ``DIR/subset_answers.json`` (``{q_uid: index}``: the public 500-question subset) and
  videos in ``DIR/videos/<q_uid>.mp4``. Questions without a public answer are answered and
  written out, but not scored (the full set is scored by its authors' server).
"""

from __future__ import annotations

import json
from pathlib import Path

from longvid.errors import InvalidRequestError
from longvid.evals.answers import LETTERS
from longvid.evals.items import Item
from longvid.evals.jsonl import load_jsonl, prompt_jsonl

BENCHMARKS = ("mlvu", "videomme", "longvideobench", "egoschema", "jsonl")
FILE_BENCHMARKS = ("jsonl",)  # --data names a file, not a folder
MLVU_TASKS = (
    "1_plotQA",
    "2_needle",
    "3_ego",
    "4_count",
    "5_order",
    "6_anomaly_reco",
    "7_topic_reasoning",
)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRequestError(f"{path} not found: see the folder layout in `longvid eval --help`") from None
    except json.JSONDecodeError as e:
        raise InvalidRequestError(f"{path}: not valid JSON ({e})") from None


def _letter_options(options: list[str]) -> list[str]:
    return [f"{LETTERS[i]}. {text}" for i, text in enumerate(options)]


# ------------------------------------------------------------------------------ MLVU


def load_mlvu(data: Path) -> list[Item]:
    root = data / "MLVU" if (data / "MLVU" / "json").is_dir() else data
    if not (root / "json").is_dir():
        raise InvalidRequestError(f"{data}: no MLVU/json folder (expected {data}/MLVU/json/1_plotQA.json, …)")
    items = []
    for task in MLVU_TASKS:
        path = root / "json" / f"{task}.json"
        if not path.exists():
            continue
        for i, row in enumerate(_read_json(path)):
            options = [str(c) for c in row["candidates"]]
            answer = str(row["answer"])
            if answer not in options:
                raise InvalidRequestError(f"{path} entry {i}: answer {answer!r} is not among its candidates")
            items.append(
                Item(
                    id=f"{task}/{i}",
                    video=root / "video" / task / row["video"],
                    question=str(row["question"]),
                    options=tuple(options),
                    answer=LETTERS[options.index(answer)],
                    splits={"task": str(row.get("question_type", task.split("_", 1)[1]))},
                )
            )
    if not items:
        raise InvalidRequestError(f"{root / 'json'}: none of the multiple-choice task files ({', '.join(MLVU_TASKS)})")
    return items


def prompt_mlvu(item: Item) -> str:
    options = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(item.options))
    return f"Question: {item.question}\nOptions:\n{options}\nOnly give the best option."


# ------------------------------------------------------------------------------ Video-MME


def _read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise InvalidRequestError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)") from None
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return _read_json(path)


def load_videomme(data: Path) -> list[Item]:
    candidates = [
        data / "videomme" / "test-00000-of-00001.parquet",
        data / "videomme" / "test-00000-of-00001.json",
        data / "videomme" / "test.jsonl",
        data / "videomme.json",
    ]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise InvalidRequestError(f"{data}: no Video-MME annotations (expected {candidates[0]})")
    items = []
    for row in _read_rows(path):
        options = [str(o) for o in row["options"]]
        texts = [o[3:] if len(o) > 2 and o[1] == "." and o[0] in LETTERS else o for o in options]
        video = data / "data" / f"{row['videoID']}.mp4"
        for alt in (video.with_suffix(".MP4"), video.with_suffix(".mkv")):
            if not video.exists() and alt.exists():
                video = alt
        items.append(
            Item(
                id=str(row["question_id"]),
                video=video,
                question=str(row["question"]),
                options=tuple(t.strip() for t in texts),
                answer=str(row["answer"]).strip().upper(),
                splits={"duration": str(row["duration"]), "task": str(row["task_type"]), "domain": str(row["domain"])},
            )
        )
    return items


def prompt_videomme(item: Item) -> str:
    letters = ", ".join(LETTERS[: len(item.options) - 1]) + f", or {LETTERS[len(item.options) - 1]}"
    return (
        "Select the best answer to the following multiple-choice question based on the video. "
        f"Respond with only the letter ({letters}) of the correct option.\n"
        f"{item.question}\n" + "\n".join(_letter_options(list(item.options))) + "\nThe best answer is:"
    )


# ------------------------------------------------------------------------------ LongVideoBench


def load_longvideobench(data: Path) -> list[Item]:
    path = data / "lvb_val.json"
    items = []
    for row in _read_json(path):
        if "candidates" in row:
            options = [str(c) for c in row["candidates"]]
        else:
            options = [str(row[f"option{i}"]) for i in range(5) if row.get(f"option{i}", "N/A") != "N/A"]
        choice = row.get("correct_choice")
        items.append(
            Item(
                id=str(row["id"]),
                video=data / "videos" / row["video_path"],
                question=str(row["question"]),
                options=tuple(options),
                answer=None if choice is None else LETTERS[int(choice)],
                splits={"duration": str(row["duration_group"]), "category": str(row["question_category"])},
            )
        )
    return items


def prompt_longvideobench(item: Item) -> str:
    return (
        f"{item.question}\n" + "\n".join(_letter_options(list(item.options))) + "\n"
        "Answer with the option's letter from the given choices directly."
    )


# ------------------------------------------------------------------------------ EgoSchema


def load_egoschema(data: Path) -> list[Item]:
    questions = _read_json(data / "questions.json")
    answers_path = data / "subset_answers.json"
    answers = _read_json(answers_path) if answers_path.exists() else {}
    items = []
    for row in questions:
        uid = str(row["q_uid"])
        options = [str(row[f"option {i}"]) for i in range(5) if f"option {i}" in row]
        answer = answers.get(uid)
        items.append(
            Item(
                id=uid,
                video=data / "videos" / f"{uid}.mp4",
                question=str(row["question"]),
                options=tuple(options),
                answer=None if answer is None else LETTERS[int(answer)],
                splits={"set": "subset" if answer is not None else "full only"},
            )
        )
    return items


def prompt_egoschema(item: Item) -> str:
    return (
        f"{item.question}\n" + "\n".join(_letter_options(list(item.options))) + "\n"
        "Answer with the option's letter from the given choices directly."
    )


LOADERS = {
    "jsonl": load_jsonl,
    "mlvu": load_mlvu,
    "videomme": load_videomme,
    "longvideobench": load_longvideobench,
    "egoschema": load_egoschema,
}
PROMPTS = {
    "jsonl": prompt_jsonl,
    "mlvu": prompt_mlvu,
    "videomme": prompt_videomme,
    "longvideobench": prompt_longvideobench,
    "egoschema": prompt_egoschema,
}


def load_benchmark(name: str, data: str | Path) -> list[Item]:
    if name not in LOADERS:
        raise InvalidRequestError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    data = Path(data)
    if name in FILE_BENCHMARKS:
        if not data.is_file():
            raise InvalidRequestError(f"{data}: not a file (--bench {name} reads one .jsonl file)")
    elif not data.is_dir():
        raise InvalidRequestError(f"{data}: not a folder")
    try:
        items = LOADERS[name](data)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
        if isinstance(e, InvalidRequestError):
            raise
        raise InvalidRequestError(
            f"{data}: the {name} annotations are not in the expected layout ({type(e).__name__}: {e}); "
            "docs/evals.md shows the layout"
        ) from None
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise InvalidRequestError(f"{data}: item ids must be unique ({', '.join(twice)} repeat)")
    return items


def content_hash(items: list[Item]) -> str:
    """What the items are, not where they lie: ids, questions, options, answers, splits, and
    each video's file name and size (a changed answer or a swapped video changes it)."""
    import hashlib

    digest = hashlib.sha256()
    for it in items:
        size = it.video.stat().st_size if it.video.exists() else -1
        row = [it.id, it.question, list(it.options), it.answer, it.splits, it.video.name, size, it.clip]
        digest.update(json.dumps(row, sort_keys=True).encode() + b"\n")
    return digest.hexdigest()[:16]


def build_prompt(name: str, item: Item) -> str:
    return PROMPTS[name](item)


# ------------------------------------------------------------------------------ scores


def summarize(name: str, records: list[dict]) -> dict:
    """Accuracy overall and per split, counting unparsed answers (wrong, and reported);
    records without a ground truth are counted as unscored; items that failed (no answer
    at all) are counted apart and never scored. MLVU adds M-Avg."""
    failed = [r for r in records if "error" in r]
    records = [r for r in records if "error" not in r]
    scored = [r for r in records if r.get("answer") is not None]
    out: dict = {
        "benchmark": name,
        "items": len(records) + len(failed),
        "failed": len(failed),
        "scored": len(scored),
        "unscored": len(records) - len(scored),
        "unparsed": sum(r.get("pred") is None for r in records),
        "accuracy": _acc(scored),
        "splits": {},
    }
    keys = sorted({k for r in scored for k in r.get("splits", {})})
    for key in keys:
        groups: dict[str, list[dict]] = {}
        for r in scored:
            groups.setdefault(str(r["splits"].get(key)), []).append(r)
        out["splits"][key] = {
            g: {"n": len(rs), "accuracy": _acc(rs), "unparsed": sum(r.get("pred") is None for r in rs)}
            for g, rs in sorted(groups.items())
        }
    if name == "mlvu" and "task" in out["splits"]:
        tasks = out["splits"]["task"].values()
        out["m_avg"] = sum(t["accuracy"] for t in tasks) / len(tasks)
    return out


def _acc(records: list[dict]) -> float | None:
    return None if not records else sum(bool(r.get("correct")) for r in records) / len(records)
