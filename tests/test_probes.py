"""Probe tasks carry the ground truth they claim; the runner scores and summarises honestly."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from longvid.errors import InvalidRequestError
from longvid.models.families import FAMILIES
from longvid.probes.runner import run_probe, summarize, wilson
from longvid.probes.tasks import LETTERS, NUMBERS, TASKS, make_item, render_frames
from longvid.video.synth import COLORS


def test_needle_item_ground_truth():
    item = make_item("needle", 7, 40, depth=0.5)
    (frame,) = item.key_frames
    assert frame == round(0.5 * 39)
    marked = [e for e in item.scene.events if e.marker]
    assert len(marked) == 1 and marked[0].start == frame and marked[0].color == item.answer
    # distractors share shapes and colours but never carry a marker
    assert all(not e.marker for e in item.scene.events if e.start != frame)
    frames = render_frames(item)
    assert frames.shape == (40, 32, 32, 3)
    # the answer colour sits at the needle's centre in its frame
    ev = marked[0]
    cy, cx = int(ev.y * 32), int(ev.x * 32)
    assert np.abs(frames[frame, cy, cx].astype(int) - COLORS[item.answer]).max() < 30


@pytest.mark.parametrize("seed", range(5))
def test_count_item_events_are_separate_and_counted(seed):
    item = make_item("count", seed, 30)
    k = NUMBERS.index(item.answer) + 1
    hits = sorted(e.start for e in item.scene.events if e.marker)
    assert len(hits) == k and list(item.key_frames) == hits
    assert all(b - a >= 2 for a, b in itertools.pairwise(hits))  # never two in a row
    others = [e for e in item.scene.events if e.start not in hits]
    assert others and not any(e.marker for e in others)
    assert {(e.x, e.y, e.size) for e in item.scene.events} == {(0.5, 0.5, 0.375)}  # same tokens every time
    frames = render_frames(item)
    marked, plain = hits[0], others[0].start
    assert not np.array_equal(frames[marked], frames[plain])


@pytest.mark.parametrize("seed", range(5))
def test_order_item_answer_is_the_earlier_colour(seed):
    item = make_item("order", seed, 50)
    f1, f2 = item.key_frames
    first = next(e for e in item.scene.events if e.start == f1)
    assert f1 < f2 and item.answer == first.color
    assert first.color in item.question


def test_multiple_choice_form_answers_with_a_letter():
    for task in TASKS:
        item = make_item(task, 3, 20, form="mc")
        assert item.answer in LETTERS
        assert item.options[LETTERS.index(item.answer)] == make_item(task, 3, 20).answer
        assert "answer with the letter" in item.question


def test_items_are_deterministic_and_validated():
    a, b = make_item("count", 11, 24), make_item("count", 11, 24)
    assert a == b
    np.testing.assert_array_equal(render_frames(a), render_frames(b))
    with pytest.raises(InvalidRequestError, match="unknown probe task"):
        make_item("recall", 0, 10)
    with pytest.raises(InvalidRequestError, match="need at least 9 frames"):
        make_item("count", 0, 6, count=5)


def test_wilson_interval():
    lo, hi = wilson(18, 20)
    assert lo == pytest.approx(0.6990, abs=1e-3) and hi == pytest.approx(0.9721, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from longvid.models import load
    from longvid.models.checkpoint.tiny import save

    return load(save("llava_onevision", tmp_path_factory.mktemp("p") / "ov", grid=8, patch=4))


def test_runner_cache_mode_moves_only_the_needle(tiny_llm, monkeypatch):
    pooled = []  # the cached features the runner pools, call by call
    real_pool = tiny_llm.pool_grid
    monkeypatch.setattr(tiny_llm, "pool_grid", lambda g, s, reducer=None: pooled.append(g.clone()) or real_pool(g, s))
    recs = list(run_probe(tiny_llm, "needle", [12], depths=[0.0, 1.0], samples=2, extends=["none", "visual-pi"]))
    assert len(recs) == 2 * 2 * 2
    assert {r.depth for r in recs} == {0.0, 1.0}
    assert all(r.correct == (r.predicted == r.answer) for r in recs)
    rows = summarize(recs)
    assert {(r.extend, r.n) for r in rows} == {("none", 4), ("visual-pi", 4)}
    # the depth sweep reuses one encoding: at depth 0 the item's own frames (needle first),
    # at depth 1 the same features with the needle's frame and the last frame swapped
    item = make_item("needle", recs[0].seed, 12, depth=0.0)
    assert item.key_frames == (0,)
    at_0, at_1 = pooled[0], pooled[1]
    torch.testing.assert_close(at_0, tiny_llm.encode_grid(render_frames(item)))
    assert torch.equal(at_1[11], at_0[0]) and torch.equal(at_1[0], at_0[11])
    assert torch.equal(at_1[1:11], at_0[1:11])
    assert not torch.equal(at_0[0], at_0[11])  # the swap is visible: the needle frame differs


def test_full_video_mode_reads_what_cache_mode_renders(tmp_path):
    from longvid.probes.runner import _frames_for

    item = make_item("order", 2, 20)
    cached, decoded = _frames_for(item, "cache"), _frames_for(item, "full")
    assert decoded.shape == cached.shape
    assert np.abs(decoded.astype(int) - cached.astype(int)).mean() < 4  # H.264 at CRF 12, 2x2 averaged


def test_probe_cli_writes_table_json_and_heatmap(tmp_path, capsys, tiny_llm):
    from longvid.cli import main

    model_dir = tiny_llm.adapter.name
    args = ["probe", "--model", model_dir, "--frames", "8,16", "--samples", "2", "--depths", "0:1:0.5"]
    code = main([*args, "--extend", "none,visual-yarn", "--pooling", "uniform,progressive", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "needle_short.json").read_text())
    assert len(data["records"]) == 2 * 2 * 3 * 2 * 2
    assert (tmp_path / "needle_short.png").stat().st_size > 1000
    table = (tmp_path / "needle_short.md").read_text()
    assert "| 16 |" in table and "visual-yarn / progressive" in table


def test_full_mode_makes_the_next_items_files_ahead_in_order(tiny_llm):
    cache = list(run_probe(tiny_llm, "order", [8, 12], samples=2))
    full = list(run_probe(tiny_llm, "order", [8, 12], samples=2, mode="full"))
    # the same items in the same order (files made one ahead in a thread), each with its truth
    assert [(r.frames, r.seed, r.answer) for r in full] == [(r.frames, r.seed, r.answer) for r in cache]


@pytest.mark.parametrize("mode", ["cache", "full"])
@pytest.mark.parametrize("family", FAMILIES)
def test_probes_run_on_every_family_in_both_modes_with_depths(tiny_models, family, mode):
    """Qwen2-VL and Qwen2.5-VL merge two frames per step (the needle moves by steps), and
    Video-LLaVA's encoder returns its CLS rows beside the grid: both crashed once."""
    llm = tiny_models[family]
    recs = list(run_probe(llm, "needle", [8], depths=[0.0, 1.0], samples=1, mode=mode, poolings=["uniform"]))
    assert [r.depth for r in recs] == [0.0, 1.0] and all(r.visual_tokens > 0 for r in recs)
    order = list(run_probe(llm, "order", [8], samples=1, mode=mode, poolings=["uniform", "merge:0.5"]))
    assert len(order) == 2 and order[1].visual_tokens < order[0].visual_tokens


@pytest.mark.parametrize("family", ["qwen2_vl", "video_llava"])
def test_the_needle_moves_by_whole_steps_and_keeps_the_haystack(tiny_models, family):
    from longvid.models.inference.encoding import step_count, swap_steps, take_steps

    llm = tiny_models[family]
    item = make_item("needle", 3, 8, depth=0.0)
    grid = llm.encode_grid(render_frames(item))
    steps = step_count(grid)
    assert steps == 8 // llm.adapter.frames_per_step
    moved = swap_steps(grid, 0, steps - 1)
    for a, b in ((0, steps - 1), (steps - 1, 0), (1, 1)):
        want, got = take_steps(grid, [a]), take_steps(moved, [b])
        for w, g in zip(
            want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,), strict=True
        ):
            assert torch.equal(w, g)
