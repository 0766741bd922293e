"""A benchmark of your own from one JSONL file: multiple choice (options) and free text
(exact match after normalisation), per split, resumable and tied to the data's content,
through the same runner as the four built in."""

from __future__ import annotations

import json
import shutil

import pytest

from longvid.errors import InvalidRequestError
from longvid.evals.answers import normalize_text
from longvid.evals.benchmarks import build_prompt, load_benchmark
from longvid.evals.runner import run_eval, run_identity


@pytest.fixture()
def bench(tmp_path):
    from longvid.bundled import SAMPLE_VIDEO

    (tmp_path / "videos").mkdir()
    shutil.copy(SAMPLE_VIDEO, tmp_path / "videos" / "a.mp4")
    rows = [
        {"id": "q1", "video": "videos/a.mp4", "question": "what colour is it ?", "options": ["red", "pink"],
         "answer": "pink", "split": "colour"},
        {"video": "videos/a.mp4", "question": "which came first ?", "options": ["circle", "square", "star"],
         "answer": "A", "split": "order"},
        {"id": "f1", "video": "videos/a.mp4", "question": "what shape has the marker ?", "answer": "The Triangle.",
         "split": "free"},
        {"id": "f2", "video": "videos/a.mp4", "question": "how many times ?", "answer": "3", "split": "free"},
    ]  # fmt: skip
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_jsonl_benchmark_is_read_prompted_and_scored(bench, tmp_path):
    items = load_benchmark("jsonl", bench)
    assert [it.id for it in items] == ["q1", "2", "f1", "f2"]
    assert items[0].answer == "B" and items[1].answer == "A" and items[2].options == ()
    assert "(B) pink" in build_prompt("jsonl", items[0]) and "short phrase" in build_prompt("jsonl", items[2])
    replies = {"q1": "(B)", "2": "The answer is C", "f1": "triangle", "f2": "three"}
    by_prompt = {build_prompt("jsonl", it): replies[it.id] for it in items}
    asked = []

    def ask(video, prompt):
        asked.append(prompt)
        return by_prompt[prompt], {}

    out = tmp_path / "r.jsonl"
    identity = run_identity("jsonl", bench, "m", {"frames": 8})
    summary = run_eval("jsonl", bench, out, ask, progress=False, identity=identity)
    assert summary["scored"] == 4 and summary["accuracy"] == 0.5  # q1 and f1 right
    assert summary["splits"]["split"]["free"]["accuracy"] == 0.5
    assert summary["splits"]["split"]["order"]["accuracy"] == 0.0
    assert normalize_text("The Triangle.") == "triangle"
    again = run_eval("jsonl", bench, out, ask, progress=False, identity=identity)  # resumed: nothing asked again
    assert len(asked) == 4 and again["accuracy"] == 0.5


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"video": "a.mp4"}', 'needs "video" and "question"'),
        ('{"video": "a.mp4", "question": "q", "options": ["x"], "answer": "y"}', "neither an option nor its letter"),
        ('{"video": "a.mp4", "question": "q", "start": 5, "end": 2}', "a clip needs numbers 0 <= start < end"),
        ("not json", "not a JSON object"),
    ],
)
def test_bad_lines_are_one_line_naming_the_line(tmp_path, line, message):
    path = tmp_path / "b.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InvalidRequestError, match=message):
        load_benchmark("jsonl", path)
    with pytest.raises(InvalidRequestError, match="not a file"):
        load_benchmark("jsonl", tmp_path)


def test_the_fixture_runs_through_the_cli(tmp_path, capsys):
    """`longvid eval --bench jsonl --data FILE` end to end on the testbed (the fixture's
    multiple-choice and free-text needle questions)."""
    from longvid.evals.fixtures import write_fixture
    from tests.support import run

    data = write_fixture("jsonl", tmp_path / "mine", n=4, frames=8)
    code, out, err = run(capsys, "eval", "--bench", "jsonl", "--data", data, "--frames", 8, "--out",
                         tmp_path / "r.jsonl")  # fmt: skip
    assert code == 0, err
    assert "**jsonl**: 4 scored items" in out and "| split | free |" in out and "| split | mc |" in out


def test_a_clip_is_asked_about_its_seconds_alone(tmp_path, testbed):
    """``start`` / ``end``: the frames are spread over those seconds, and the content hash
    names the clip (another clip is another run)."""
    from longvid.bundled import SAMPLE_VIDEO
    from longvid.evals.answerers import model_answerer
    from longvid.evals.benchmarks import content_hash

    shutil.copy(SAMPLE_VIDEO, tmp_path / "a.mp4")
    row = {"id": "c", "video": "a.mp4", "question": "what colour is the shape with the marker ?", "answer": "pink",
           "start": 84.0, "end": 92.0}  # fmt: skip
    path = tmp_path / "clip.jsonl"
    path.write_text(json.dumps(row) + "\n")
    items = load_benchmark("jsonl", path)
    assert items[0].clip == (84.0, 92.0)
    answerer = model_answerer(testbed, frames=16)
    frames = answerer.load(items[0].source)
    assert len(frames) == 16 and frames.timestamps[0] >= 84.0 and frames.timestamps[-1] <= 92.0
    summary = run_eval("jsonl", path, tmp_path / "r.jsonl", answerer, progress=False)
    assert summary["scored"] == 1
    row["end"] = 100.0
    path.write_text(json.dumps(row) + "\n")
    assert content_hash(load_benchmark("jsonl", path)) != content_hash(items)


def test_compare_works_on_two_jsonl_runs(bench, tmp_path):
    from longvid.evals.runner import compare

    items = load_benchmark("jsonl", bench)
    right = {it.id: (f"({it.answer})" if it.options else it.answer) for it in items}
    prompts = {build_prompt("jsonl", it): it.id for it in items}
    run_eval("jsonl", bench, tmp_path / "a.jsonl", lambda v, p: (right[prompts[p]], {}), progress=False,
             identity=run_identity("jsonl", bench, "m", {"frames": 8}))  # fmt: skip
    run_eval("jsonl", bench, tmp_path / "b.jsonl", lambda v, p: ("no idea", {}), progress=False,
             identity=run_identity("jsonl", bench, "m", {"frames": 16}))  # fmt: skip
    table = compare(None, tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    assert "| overall | | 4/4 | 100.0 | 0.0 | -100.0 |" in table and "| split | free |" in table
