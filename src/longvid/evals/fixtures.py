"""Small benchmark folders in each benchmark's exact official layout, with generated videos:
to test loaders and scoring offline, and to try ``longvid eval`` without downloading
anything (``python -m longvid.evals.fixtures DIR``).

Each item is a needle probe (``longvid.probes``): "what colour is the shape with the
marker ?" with colour options, so the bundled testbed can answer them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from longvid.evals.answers import LETTERS
from longvid.probes.tasks import make_item, write_item_video

QUESTION = "what colour is the shape with the marker ?"


def _items(n: int, options: int, frames: int, seed: int):
    """(probe item, option texts, index of the right one) for n needle videos."""
    out = []
    for i in range(n):
        item = make_item("needle", seed + i, frames, form="mc")
        texts = list(item.options)[:options]
        right = LETTERS.index(item.answer)
        if right >= options:  # keep the right answer among the first ``options``
            texts[0], right = item.options[right], 0
        out.append((item, texts, right))
    return out


def write_mlvu(root: Path, n: int = 4, frames: int = 16, seed: int = 0) -> Path:
    base = root / "MLVU"
    tasks = ["2_needle", "4_count"]
    for t, task in enumerate(tasks):
        rows = []
        for j, (item, texts, right) in enumerate(_items(n // 2 or 1, 4, frames, seed + 100 * t)):
            name = f"{task}_{j}.mp4"
            write_item_video(item, _mk(base / "video" / task) / name)
            rows.append(
                {
                    "video": name,
                    "duration": frames / 4,
                    "question": QUESTION,
                    "candidates": texts,
                    "answer": texts[right],
                    "question_type": task.split("_", 1)[1],
                }
            )
        _mk(base / "json")
        (base / "json" / f"{task}.json").write_text(json.dumps(rows, indent=1))
    return root


def write_videomme(root: Path, n: int = 4, frames: int = 16, seed: int = 10) -> Path:
    rows = []
    durations = ["short", "medium", "long"]
    for j, (item, texts, right) in enumerate(_items(n, 4, frames, seed)):
        vid = f"vid{j:03d}"
        _mk(root / "data")
        write_item_video(item, root / "data" / f"{vid}.mp4")
        rows.append(
            {
                "video_id": f"{j + 1:03d}",
                "duration": durations[j % 3],
                "domain": "Knowledge",
                "sub_category": "Humanity & History",
                "url": f"https://example.invalid/{vid}",
                "videoID": vid,
                "question_id": f"{j + 1:03d}-1",
                "task_type": "Attribute Perception" if j % 2 == 0 else "Temporal Perception",
                "question": QUESTION,
                "options": [f"{LETTERS[k]}. {t}" for k, t in enumerate(texts)],
                "answer": LETTERS[right],
            }
        )
    _mk(root / "videomme")
    (root / "videomme" / "test-00000-of-00001.json").write_text(json.dumps(rows, indent=1))
    return root


def write_longvideobench(root: Path, n: int = 4, frames: int = 16, seed: int = 20) -> Path:
    rows = []
    groups = [15, 60, 600, 3600]
    for j, (item, texts, right) in enumerate(_items(n, 5, frames, seed)):
        _mk(root / "videos")
        write_item_video(item, root / "videos" / f"lvb{j}.mp4")
        rows.append(
            {
                "video_id": f"lvb{j}",
                "question": QUESTION,
                "question_wo_referring_query": QUESTION,
                "candidates": texts,
                "correct_choice": right,
                "position": [],
                "topic_category": "NP-News-Programs",
                "question_category": "S2A" if j % 2 == 0 else "E2O",
                "level": "L1-Perception",
                "id": f"lvb{j}_0",
                "video_path": f"lvb{j}.mp4",
                "subtitle_path": f"lvb{j}_en.json",
                "duration_group": groups[j % 4],
                "starting_timestamp_for_subtitles": 0,
                "duration": frames / 4,
                "view_count": 0,
            }
        )
    (root / "lvb_val.json").write_text(json.dumps(rows, indent=1))
    return root


def write_egoschema(root: Path, n: int = 4, frames: int = 16, seed: int = 30) -> Path:
    rows, answers = [], {}
    for j, (item, texts, right) in enumerate(_items(n, 5, frames, seed)):
        uid = f"0000{j}-aaaa-bbbb-cccc-{j:012d}"
        _mk(root / "videos")
        write_item_video(item, root / "videos" / f"{uid}.mp4")
        row = {"q_uid": uid, "google_drive_id": "", "question": QUESTION}
        row.update({f"option {k}": t for k, t in enumerate(texts)})
        rows.append(row)
        if j < n - 1:  # the last question keeps its answer private, as most of EgoSchema does
            answers[uid] = right
    (root / "questions.json").write_text(json.dumps(rows, indent=1))
    (root / "subset_answers.json").write_text(json.dumps(answers, indent=1))
    return root


def write_jsonl(root: Path, n: int = 4, frames: int = 16, seed: int = 40) -> Path:
    """A benchmark of one's own: ``root/mine.jsonl`` over ``root/videos``, half multiple choice
    (answer given as the option's text), half free text (the colour), two splits. Returns the
    file (``--bench jsonl --data FILE``)."""
    rows = []
    for j, (item, texts, right) in enumerate(_items(n, 4, frames, seed)):
        write_item_video(item, _mk(root / "videos") / f"v{j}.mp4")
        row = {"id": f"j{j}", "video": f"videos/v{j}.mp4", "question": QUESTION, "split": ["mc", "free"][j % 2]}
        row.update({"options": texts, "answer": texts[right]} if j % 2 == 0 else {"answer": texts[right]})
        rows.append(row)
    path = root / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


WRITERS = {
    "mlvu": write_mlvu,
    "videomme": write_videomme,
    "longvideobench": write_longvideobench,
    "egoschema": write_egoschema,
    "jsonl": write_jsonl,
}


def write_fixture(bench: str, root: str | Path, n: int = 4, frames: int = 16) -> Path:
    return WRITERS[bench](_mk(Path(root)), n=n, frames=frames)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "out/fixtures")
    for name in WRITERS:
        print(write_fixture(name, target / name))
