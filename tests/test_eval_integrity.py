"""Nothing wrong is scored: a results file read back is vetted line by line against the
annotations (duplicates, foreign ids, wrong types, stale grades are set aside and their items
asked again), a run is tied to the data's content, two runs cannot write one file, and a
malformed annotation file is one line."""

from __future__ import annotations

import json
import shutil

import pytest

from longvid.errors import InvalidRequestError
from longvid.evals.benchmarks import load_benchmark
from longvid.evals.fixtures import write_fixture
from longvid.evals.results import lock, read_results
from longvid.evals.runner import run_eval, run_identity


@pytest.fixture()
def mlvu(tmp_path):
    return write_fixture("mlvu", tmp_path / "mlvu", n=8)


def answers(items, right: set[int]):
    """Right for the items at the given positions, wrong for the rest."""
    plan = {}
    for k, it in enumerate(items):
        letter = "ABCD"["ABCD".index(it.answer)] if k in right else "ABCD"[("ABCD".index(it.answer) + 1) % 4]
        plan[it.id] = f"({letter})"
    by_prompt = {}
    asked = []

    def ask(video, prompt):
        asked.append(video)
        item = next(it for it in items if str(it.video) == str(video) and it.question in prompt)
        by_prompt[item.id] = plan[item.id]
        return plan[item.id], {}

    return ask, asked


def test_duplicate_foreign_and_mistyped_lines_are_never_counted(mlvu, tmp_path):
    items = load_benchmark("mlvu", mlvu)
    ask, _ = answers(items, right={0, 1})
    out = tmp_path / "r.jsonl"
    fresh = run_eval("mlvu", mlvu, out, ask, progress=False)
    assert fresh["accuracy"] == pytest.approx(2 / 8)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    wrong = next(r for r in lines if r["correct"] is False)
    forged = {**wrong, "correct": True, "pred": wrong["answer"]}  # a duplicate that claims a right answer
    foreign = {**lines[0], "id": "no-such-item"}
    typed = {**lines[1], "correct": "yes"}
    with out.open("a") as f:
        for r in (forged, foreign, typed):
            f.write(json.dumps(r) + "\n")
    ask_again, asked = answers(items, right={0, 1})
    with pytest.warns(UserWarning, match=r"set aside .*their items are asked again"):
        resumed = run_eval("mlvu", mlvu, out, ask_again, progress=False)
    assert resumed["accuracy"] == fresh["accuracy"] and resumed["scored"] == 8
    # the items whose lines could not be trusted were asked again, the others were not
    assert len(asked) == 2
    bad = (tmp_path / "r.jsonl.bad").read_text()
    assert "no-such-item" in bad and '"yes"' in bad
    assert len(read_results(out)) == 8


def test_an_annotation_changed_after_a_run_is_another_run(mlvu, tmp_path):
    items = load_benchmark("mlvu", mlvu)
    ask, _ = answers(items, right=set(range(8)))
    out = tmp_path / "r.jsonl"
    identity = run_identity("mlvu", mlvu, "m", {"frames": 8})
    run_eval("mlvu", mlvu, out, ask, progress=False, identity=identity)
    table = next((mlvu / "MLVU" / "json").glob("*.json"))
    rows = json.loads(table.read_text())
    rows[0]["answer"] = next(c for c in rows[0]["candidates"] if c != rows[0]["answer"])
    table.write_text(json.dumps(rows))
    changed = run_identity("mlvu", mlvu, "m", {"frames": 8})
    assert changed["data_content"] != identity["data_content"]
    with pytest.raises(InvalidRequestError, match="data_content"):
        run_eval("mlvu", mlvu, out, ask, progress=False, identity=changed)
    # and without an identity, the stale line's grade no longer follows: it is redone
    items = load_benchmark("mlvu", mlvu)
    ask, asked = answers(items, right=set(range(8)))
    with pytest.warns(UserWarning, match="a grade that does not follow"):
        again = run_eval("mlvu", mlvu, out, ask, progress=False)
    assert len(asked) == 1 and again["accuracy"] == 1.0


def test_two_runs_cannot_write_one_results_file(tmp_path):
    out = tmp_path / "r.jsonl"
    with lock(out), pytest.raises(InvalidRequestError, match="another run is writing"), lock(out):
        pass
    with lock(out):  # released
        pass


@pytest.mark.parametrize(
    "rows,message",
    [
        ({"video": "a.mp4"}, "not in the expected layout"),  # not a list
        ([{"video": "a.mp4", "question": "q", "answer": "x"}], "not in the expected layout"),  # no candidates
    ],
)
def test_malformed_annotations_are_one_line(tmp_path, mlvu, rows, message):
    data = tmp_path / "broken"
    shutil.copytree(mlvu, data)
    for table in (data / "MLVU" / "json").glob("*.json"):
        table.write_text(json.dumps(rows))
    with pytest.raises(InvalidRequestError, match=message):
        load_benchmark("mlvu", data)
