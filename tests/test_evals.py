"""Benchmarks: answer parsing, loaders and scorers on official-format fixtures, resumable
runs, two-process sharding, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from longvid.evals.answers import parse_choice
from longvid.evals.benchmarks import BENCHMARKS, FILE_BENCHMARKS, build_prompt, load_benchmark, summarize
from longvid.evals.fixtures import write_fixture
from longvid.evals.runner import Shard, read_results, run_eval

OPTIONS = ["a cat sleeps", "a dog runs", "a red car", "the car"]


@pytest.mark.parametrize(
    "text,want",
    [
        ("B", "B"), ("(B)", "B"), ("B.", "B"), ("b", "B"), ("B)", "B"), ("**C**", "C"), ("C\n", "C"),
        ("The answer is B", "B"), ("the answer is b", "B"), ("Best option: (B", "B"), ("Answer: B", "B"),
        ("Option B", "B"), ("The best answer is: A", "A"), ("The correct answer is (D) the car", "D"),
        ("(c) a red car", "C"), ("D. A book", "D"), ("The answer is C. A dog runs", "C"),
        ("B, because the dog runs", "B"), ("A", "A"), ("A.", "A"), ("(A) a cat sleeps", "A"),
        # option text, including text that starts with the article "A" or holds a letter
        ("A dog runs", "B"), ("a dog runs.", "B"), ("Answer: A dog runs", "B"), ("It is a red car", "C"),
        ("the car", "D"), ("A cat sleeps", "A"),
        # nothing, or more than one: unparsed, never a guess
        ("E", None), ("I do not know", None), ("", None), ("A or B", None), ("car", None),
    ],
)  # fmt: skip
def test_parse_choice(text, want):
    assert parse_choice(text, OPTIONS) == want


def test_parse_choice_option_text_with_a_letter_and_a_stated_answer():
    options = ["a dog runs", "a cat sleeps", "(B) is wrong", "none"]
    assert parse_choice("(B) is wrong", options) == "C"  # the option's own text, not the letter in it
    assert parse_choice("(B) a cat sleeps", options) == "B"
    assert parse_choice("Option A is wrong; the answer is C", options) == "C"
    assert parse_choice("The answer is B, not A", options) == "B"
    assert parse_choice("the answer is A or the answer is B", options) is None  # two stated: no guess


def scripted(items, forms):
    """An ask() that answers item k in form k % len(forms); returns it and the expected grades."""
    plan = {}
    for k, item in enumerate(items):
        form = forms[k % len(forms)]
        plan[str(item.video)] = form(item)
    calls = []

    def ask(video, prompt):
        calls.append(str(video))
        return plan[str(video)], {}

    return ask, calls


def other(letter: str, n: int) -> str:
    return "ABCDE"[("ABCDE".index(letter) + 1) % n]


FORMS = [
    lambda it: f"({it.answer})" if it.answer else "(A)",
    lambda it: f"The answer is {(it.answer or 'A').lower()}",
    lambda it: f"Best option: ({it.answer or 'A'}",
    lambda it: it.options["ABCDE".index(it.answer or "A")].upper(),  # the option's text
    lambda it: f"{other(it.answer or 'A', len(it.options))}. I think",  # wrong
    lambda it: "I cannot tell from the video",  # unparsed
]
# per form: correct, correct, correct, correct, wrong, unparsed


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    return {b: write_fixture(b, root / b, n=6) for b in BENCHMARKS}


@pytest.mark.parametrize("bench", [b for b in BENCHMARKS if b not in FILE_BENCHMARKS])  # jsonl: test_eval_jsonl.py
def test_loader_prompt_and_score_on_the_official_format(bench, fixtures, tmp_path):
    items = load_benchmark(bench, fixtures[bench])
    assert len(items) == 6 and all(it.video.exists() for it in items)
    prompt = build_prompt(bench, items[0])
    assert items[0].question in prompt and all(o in prompt for o in items[0].options)
    ask, calls = scripted(items, FORMS)
    summary = run_eval(bench, fixtures[bench], tmp_path / "r.jsonl", ask, progress=False)
    records = read_results(tmp_path / "r.jsonl")
    assert [r["id"] for r in records] == [it.id for it in items] and len(calls) == 6
    grades = [r["correct"] for r in records]
    if bench == "egoschema":  # the last question has no public answer: answered, not scored
        assert grades == [True, True, True, True, False, None]
        assert summary["scored"] == 5 and summary["unscored"] == 1 and summary["accuracy"] == 4 / 5
    else:
        assert grades == [True, True, True, True, False, False]
        assert summary["accuracy"] == 4 / 6
    assert summary["unparsed"] == 1 and records[5]["pred"] is None
    split = {"mlvu": "task", "videomme": "duration", "longvideobench": "duration", "egoschema": "set"}[bench]
    groups = summary["splits"][split]
    assert sum(g["n"] for g in groups.values()) == summary["scored"]
    if bench == "mlvu":  # M-Avg: the mean of the per-task accuracies
        accs = [g["accuracy"] for g in groups.values()]
        assert summary["m_avg"] == pytest.approx(sum(accs) / len(accs))
    if bench == "videomme":
        assert groups["short"]["n"] == 2 and groups["long"]["n"] == 2


def test_killed_run_resumes_without_recomputing(fixtures, tmp_path):
    bench, data = "videomme", fixtures["videomme"]
    items = load_benchmark(bench, data)
    full_ask, _ = scripted(items, FORMS)
    reference = tmp_path / "ref.jsonl"
    run_eval(bench, data, reference, full_ask, progress=False)

    calls = []

    def dying_ask(video, prompt):
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while answering the fourth item
        calls.append(video)
        return full_ask(video, prompt)

    out = tmp_path / "run.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_eval(bench, data, out, dying_ask, progress=False)
    with out.open("a") as f:  # and a line cut off mid-write
        f.write('{"id": "004-1", "response": "(B')
    assert len(read_results(out)) == 3
    again = []

    def counting_ask(video, prompt):
        again.append(video)
        return full_ask(video, prompt)

    with pytest.warns(UserWarning, match=r"1 line\(s\) set aside .*\(1 unreadable\)"):
        summary = run_eval(bench, data, out, counting_ask, progress=False)
    assert len(again) == 3  # only the three items not yet written
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(read_results(out)) == strip(read_results(reference))
    assert out.read_text().endswith("\n") and summary["accuracy"] == 4 / 6


def test_shards_take_every_nth_item(fixtures, tmp_path):
    items = load_benchmark("mlvu", fixtures["mlvu"])
    ask, _ = scripted(items, FORMS)
    shard = Shard(rank=1, world=2)
    assert shard.path(tmp_path / "r.jsonl").name == "r.rank1-of-2.jsonl"
    # rank 1 alone (rank 0 would merge): run its share without the barrier
    from longvid.evals import runner

    orig = runner._barrier
    runner._barrier = lambda: None
    try:
        assert run_eval("mlvu", fixtures["mlvu"], tmp_path / "r.jsonl", ask, shard=shard, progress=False) is None
    finally:
        runner._barrier = orig
    assert [r["id"] for r in read_results(tmp_path / "r.rank1-of-2.jsonl")] == [it.id for it in items[1::2]]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_torchrun_equals_one_process(fixtures, tmp_path):
    data = fixtures["longvideobench"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    common = ["eval", "--bench", "longvideobench", "--data", str(data), "--frames", "8"]
    from longvid.cli import main

    assert main([*common, "--out", str(tmp_path / "one.jsonl")]) == 0  # one process: this one
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), "-m", "longvid", *common, "--out", str(tmp_path / "two.jsonl")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    merged = read_results(tmp_path / "two.jsonl")
    assert len(merged) == 6 and strip(merged) == strip(read_results(tmp_path / "one.jsonl"))
    summary = json.loads((tmp_path / "two.summary.json").read_text())
    assert summary["config"]["processes"] == 2 and summary["items"] == 6


def test_cli_compare_and_errors(fixtures, tmp_path, capsys):
    from longvid.cli import main

    items = load_benchmark("egoschema", fixtures["egoschema"])
    a_ask, _ = scripted(items, FORMS)
    b_ask, _ = scripted(items, FORMS[:1])  # always right
    run_eval("egoschema", fixtures["egoschema"], tmp_path / "a.jsonl", a_ask, progress=False)
    run_eval("egoschema", fixtures["egoschema"], tmp_path / "b.jsonl", b_ask, progress=False)
    code = main(["eval", "--bench", "egoschema", "--compare", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
    out = capsys.readouterr().out
    assert code == 0 and "| overall | | 5/5 | 80.0 | 100.0 | +20.0 |" in out
    assert main(["eval", "--bench", "nope", "--data", "x"]) == 2
    assert "must be one of" in capsys.readouterr().err
    assert main(["eval", "--bench", "mlvu", "--data", str(tmp_path)]) == 2
    assert "no MLVU/json folder" in capsys.readouterr().err


def test_compare_reads_the_benchmark_from_the_runs_and_refuses_two(fixtures, tmp_path, capsys):
    from longvid.cli import main
    from longvid.evals.runner import run_identity

    ego = load_benchmark("egoschema", fixtures["egoschema"])
    mlvu = load_benchmark("mlvu", fixtures["mlvu"])
    for name, bench, items in (("a", "egoschema", ego), ("b", "egoschema", ego), ("m", "mlvu", mlvu)):
        ask, _ = scripted(items, FORMS)
        identity = run_identity(bench, fixtures[bench], "m", {"frames": 8})
        run_eval(bench, fixtures[bench], tmp_path / f"{name}.jsonl", ask, progress=False, identity=identity)
    assert main(["eval", "--compare", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]) == 0  # no --bench
    assert "| overall |" in capsys.readouterr().out
    assert main(["eval", "--compare", str(tmp_path / "a.jsonl"), str(tmp_path / "m.jsonl")]) == 2
    assert "different benchmarks (egoschema, mlvu)" in capsys.readouterr().err


def test_summary_counts_unparsed_and_errors():
    records = [
        {"id": "1", "pred": "A", "answer": "A", "correct": True, "splits": {"d": "x"}},
        {"id": "2", "pred": None, "answer": "B", "correct": False, "splits": {"d": "x"}, "error": "missing video"},
    ]
    s = summarize("videomme", records)
    # a failed item has no answer: counted apart, never scored as a wrong one
    assert s["items"] == 2 and s["failed"] == 1 and s["scored"] == 1 and s["accuracy"] == 1.0
    assert s["unparsed"] == 0 and s["splits"]["d"]["x"]["n"] == 1


# ------------------------------------------------------------------ lmms-eval plugin


def test_lmms_entry_point_is_declared():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["lmms_eval.models"]["longvid"] == "longvid.evals.lmms_plugin:manifest"
    import longvid.evals.lmms_plugin as plugin

    assert callable(plugin.manifest) and plugin.MODEL_ID == "longvid"


def test_repair_keeps_every_valid_line_and_sets_the_rest_aside(tmp_path):
    from longvid.evals.results import read_results as read

    good = [{"id": str(i), "pred": "A"} for i in range(5)]
    lines = [json.dumps(r).encode() + b"\n" for r in good]
    junk = [b'{"id": "x", "pred\n', b"[]\n", b"null\n", b'{"foo": 1}\n', b"\xff\xfe not utf-8\n"]
    path = tmp_path / "r.jsonl"
    path.write_bytes(lines[0] + junk[0] + lines[1] + junk[1] + junk[2] + lines[2] + junk[3] + lines[3] + junk[4]
                     + lines[4].rstrip(b"\n"))  # fmt: skip
    assert read(path) == good  # reading alone changes nothing
    with pytest.warns(UserWarning, match=r"5 line\(s\) set aside .*\(5 unreadable\)"):
        assert read(path, repair=True) == good
    assert path.read_bytes() == b"".join(lines)  # the valid lines, each ending in a newline
    assert (tmp_path / "r.jsonl.bad").read_bytes() == b"".join(junk)


def test_failed_items_are_retried_and_never_scored(fixtures, tmp_path):
    from longvid.errors import VideoNotFoundError

    bench, data = "videomme", fixtures["videomme"]
    items = load_benchmark(bench, data)
    ask, _ = scripted(items, FORMS[:1])  # always right

    def broken_for_two(video, prompt):
        if video in (items[1].video, items[4].video):
            raise VideoNotFoundError(video, "no such file")
        return ask(video, prompt)

    out = tmp_path / "r.jsonl"
    first = run_eval(bench, data, out, broken_for_two, progress=False)
    assert first["failed"] == 2 and first["scored"] == 4 and first["accuracy"] == 1.0 and first["unparsed"] == 0
    asked = []
    second = run_eval(bench, data, out, lambda v, p: asked.append(v) or ask(v, p), progress=False)
    assert sorted(map(str, asked)) == sorted(str(items[k].video) for k in (1, 4))  # only the failed ones
    assert second["failed"] == 0 and second["scored"] == 6 and second["accuracy"] == 1.0


def test_a_results_file_is_tied_to_the_settings_that_wrote_it(fixtures, tmp_path):
    from longvid.errors import InvalidRequestError
    from longvid.evals.results import free_path
    from longvid.evals.runner import run_identity

    items = load_benchmark("videomme", fixtures["videomme"])
    ask, _ = scripted(items, FORMS)
    out = tmp_path / "r.jsonl"
    frames_64 = run_identity("videomme", fixtures["videomme"], "m", {"frames": 64, "kv_bits": 16})
    run_eval("videomme", fixtures["videomme"], out, ask, progress=False, identity=frames_64)
    same = run_eval("videomme", fixtures["videomme"], out, ask, progress=False, identity=frames_64)
    assert same["items"] == 6  # the same settings continue the same file
    frames_16 = {**frames_64, "frames": 16, "kv_bits": 2}
    with pytest.raises(InvalidRequestError, match=r"frames: 64 then, 16 now; kv_bits: 16 then, 2 now"):
        run_eval("videomme", fixtures["videomme"], out, ask, progress=False, identity=frames_16)
    mlvu = run_identity("mlvu", fixtures["mlvu"], "m", {"frames": 64, "kv_bits": 16})
    with pytest.raises(InvalidRequestError, match="benchmark: 'videomme' then, 'mlvu' now"):
        run_eval("mlvu", fixtures["mlvu"], out, ask, progress=False, identity=mlvu)
    assert free_path(out, frames_64) == out and free_path(out, frames_16) == tmp_path / "r-2.jsonl"
    # answers with no record of their settings are not trusted either
    bare = tmp_path / "bare.jsonl"
    run_eval("videomme", fixtures["videomme"], bare, ask, progress=False)
    with pytest.raises(InvalidRequestError, match="no record of the settings"):
        run_eval("videomme", fixtures["videomme"], bare, ask, progress=False, identity=frames_64)


def test_eval_cli_refuses_bad_paths_and_limits(fixtures, tmp_path, capsys):
    from longvid.cli import main

    base = ["eval", "--bench", "egoschema", "--data", str(fixtures["egoschema"])]
    assert main([*base, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main([*base, "--limit", "-1", "--out", str(tmp_path / "r.jsonl")]) == 2
    assert "--limit must be >= 1" in capsys.readouterr().err
    assert main(["eval", "--bench", "egoschema", "--compare", str(tmp_path / "a.jsonl"), str(tmp_path / "b")]) == 2
    assert "no results file at" in capsys.readouterr().err


def test_decoding_ahead_gives_the_same_answers(fixtures, tmp_path):
    """model_answerer decodes the next video in a thread while the model answers: the lines
    equal answering from the files one at a time; a missing video still fails only its items."""
    import shutil

    from longvid.evals.answerers import model_answerer
    from longvid.models import load

    data = tmp_path / "lvb"
    shutil.copytree(fixtures["longvideobench"], data)
    items = load_benchmark("longvideobench", data)
    items[2].video.unlink()  # one video gone
    ask = model_answerer(load(None), frames=8)
    assert hasattr(ask, "load")
    ahead = run_eval("longvideobench", data, tmp_path / "ahead.jsonl", ask, progress=False)
    ask.decodes_ahead = False
    plain = run_eval("longvideobench", data, tmp_path / "plain.jsonl", ask, progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(read_results(tmp_path / "ahead.jsonl")) == strip(read_results(tmp_path / "plain.jsonl"))
    assert ahead["failed"] == plain["failed"] == 1
