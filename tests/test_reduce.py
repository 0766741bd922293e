"""Content-aware token reduction: budgets honoured exactly and independent of chunking,
deterministic, positions of kept tokens, and every entry point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longvid.errors import InvalidRequestError
from longvid.extend.positions import TextSpan, VisualSpan, mrope_positions, positions_1d
from longvid.extend.reduce import REDUCERS, Reducer, tokens_per_frame
from tests.support import SAMPLE


def features(t=12, h=4, w=4, c=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(h, w, c, generator=g)
    grid = base.expand(t, h, w, c).clone() + 0.01 * torch.randn(t, h, w, c, generator=g)
    grid[5] += torch.randn(h, w, c, generator=g)  # one frame unlike the rest
    grid[9, 1, 2] += 3 * torch.randn(c, generator=g)  # one token that changes
    return grid


@pytest.mark.parametrize("name", REDUCERS)
@pytest.mark.parametrize("keep", [0.5, 0.25, 0.125])
def test_budget_is_exact_and_the_same_however_frames_are_chunked(name, keep):
    grid = features()
    per_frame = tokens_per_frame(keep, 4, 4)
    whole = Reducer(name, keep).kept(grid)
    reducer, state = Reducer(name, keep), Reducer(name, keep).start()
    chunked = reducer.kept(grid[:4], state) + reducer.kept(grid[4:8], state) + reducer.kept(grid[8:], state)
    for kept in (whole, chunked):
        assert sum(len(k) for k in kept) == 12 * per_frame  # exact
        assert all(len(k) >= 1 for k in kept)  # no frame vanishes
        assert all(torch.equal(k, torch.sort(k).values) and int(k.max()) < 16 for k in kept)
    assert [k.tolist() for k in whole] == [k.tolist() for k in Reducer(name, keep).kept(grid)]  # deterministic


def test_uniqueness_gives_the_distinct_frame_more():
    kept = Reducer("uniqueness", 0.25).kept(features())
    sizes = [len(k) for k in kept]
    assert sizes[5] == max(sizes) and sizes[5] > 4


def test_merge_keeps_what_changes_and_drops_repeats():
    kept = Reducer("merge", 0.25).kept(features())
    assert len(kept[0]) == 16  # the first frame repeats nothing
    assert 1 * 4 + 2 in kept[9].tolist()  # the token that changed, at row 1, column 2
    assert len(kept[5]) > 1 and len(kept[6]) > 1  # into and out of the unlike frame


def test_bad_reducer_and_keep():
    with pytest.raises(InvalidRequestError, match="unknown reducer"):
        Reducer("magic", 0.5)
    with pytest.raises(InvalidRequestError, match=r"keep must be in \(0, 1\]"):
        Reducer("merge", 0)
    with pytest.raises(InvalidRequestError, match="kept-token positions"):
        Reducer("merge", 0.5, "gaps")


def test_kept_tokens_keep_their_mrope_coordinates_and_1d_positions_are_consecutive():
    full = VisualSpan(((2, 3), (2, 3)), (1.0, 1.0))
    kept = VisualSpan(((2, 3), (2, 3)), (1.0, 1.0), kept=((0, 4), (1, 2, 5)))
    spans = lambda v: [TextSpan(2), v, TextSpan(1)]  # noqa: E731
    all_ids, some_ids = mrope_positions(spans(full)), mrope_positions(spans(kept))
    assert kept.length == 5 and some_ids.shape == (3, 2 + 5 + 1)
    chosen = [2 + 0, 2 + 4, 2 + 6 + 1, 2 + 6 + 2, 2 + 6 + 5]
    assert torch.equal(some_ids[:, 2:7], all_ids[:, chosen])
    assert int(some_ids[0, -1]) == int(some_ids[:, :7].max()) + 1  # text resumes after the video
    assert positions_1d(spans(kept)).tolist() == list(range(8))


def test_original_positions_keep_the_gaps_in_1d_layouts():
    """kept_positions="original": each kept token sits where it sat before reduction (step
    extras and the trailing extra included), and text resumes after the whole unreduced span."""
    full = VisualSpan(((2, 3), (2, 3)), (1.0, 1.0), extra=1, step_extra=1)
    kept = VisualSpan(((2, 3), (2, 3)), (1.0, 1.0), 1, 1, kept=((0, 4), (1, 2, 5)), kept_positions="original")
    assert (kept.length, kept.extent, full.extent) == (1 + 2 + 1 + 3 + 1, 15, 15)
    spans = lambda v: [TextSpan(2), v, TextSpan(2)]  # noqa: E731
    all_ids, some_ids = positions_1d(spans(full)), positions_1d(spans(kept))
    # text 0-1; step 0: extra 2, grid 3..8; step 1: extra 9, grid 10..15; newline 16; text 17-18
    assert some_ids.tolist() == [0, 1, 2, 3, 7, 9, 11, 12, 15, 16, 17, 18]
    assert all_ids[-2:].tolist() == some_ids[-2:].tolist()
    squeezed = positions_1d(spans(kept), visual_scale=2.0)  # visual-pi: the gaps squeeze too
    assert squeezed[2:10].tolist() == [2 + v / 2 for v in (0, 1, 5, 7, 9, 10, 13, 14)]
    assert squeezed[-2].item() == pytest.approx(2 + 14 / 2 + 1)


def test_original_positions_size_the_visual_window_by_the_unreduced_span(tiny_models):
    """With gaps kept, visual-yarn's scale is the unreduced video's (the positions it spans);
    renumbered, it is the kept tokens'."""
    llm = tiny_models["llava_onevision"]
    video = np.random.default_rng(4).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    schedule = llm.schedule("uniform")
    full = llm.layout("q", llm.encode_video(video, 16, schedule), "visual-yarn", 100)
    layouts = {
        positions: llm.layout(
            "q", llm.encode_video(video, 16, schedule, reducer=Reducer("merge", 0.25, positions)), "visual-yarn", 100
        )
        for positions in ("compact", "original")
    }
    assert layouts["original"].length == layouts["compact"].length < full.length
    assert layouts["original"].plan.scale == full.plan.scale > layouts["compact"].plan.scale
    assert layouts["original"].positions.max() == full.positions.max() > layouts["compact"].positions.max()


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl", "video_llava"])
@pytest.mark.parametrize("name", REDUCERS)
def test_ask_keeps_the_budget_and_the_estimate_knows_it(tiny_models, family, name):
    llm = tiny_models[family]
    video = np.random.default_rng(3).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    answer = llm.ask(video, "what colour ?", reduce=name, keep=0.25, max_new_tokens=1)
    r = answer.report
    full = llm.ask(video, "what colour ?", max_new_tokens=1).report
    assert r.reduce == f"{name}(keep=0.25)" and r.visual_tokens < full.visual_tokens
    schedule = llm.schedule("uniform")
    estimated = llm.estimate(8, schedule, grid=llm.video_grid(video), reducer=Reducer(name, 0.25))
    plain = llm.estimate(8, schedule, grid=llm.video_grid(video))
    assert estimated.kv_cache < plain.kv_cache
    steps = 8 // llm.adapter.frames_per_step
    hp = -(-llm.video_grid(video)[0] // schedule.stride)
    expected = steps * tokens_per_frame(0.25, hp, hp) + steps * llm.adapter.step_extra_tokens
    assert r.visual_tokens == expected + llm.adapter.extra_token_count()
    assert sum(r.tokens_per_frame) * 1 == pytest.approx(r.visual_tokens - llm.adapter.extra_token_count())


def test_reduction_needs_the_familys_own_pooling(tiny_models):
    video = np.zeros((8, 32, 32, 3), np.uint8)
    with pytest.raises(InvalidRequestError, match="uniform"):
        tiny_models["llava_onevision"].ask(video, "q", pooling="progressive", reduce="merge")


def test_cli_and_probe_columns(capsys, tmp_path):
    from tests.support import run

    code, out, err = run(capsys, "ask", SAMPLE, "what colour is the shape with the marker ?", "--frames", 32,
                         "--reduce", "merge", "--keep", 0.5, "--json")  # fmt: skip
    assert code == 0, err
    assert '"reduce": "merge(keep=0.5)"' in out
    code, out, err = run(capsys, "probe", "--task", "needle", "--frames", 16, "--samples", 1, "--reduce",
                         "uniqueness,merge", "--keep", 0.25, "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    assert "none / uniqueness:0.25" in out and "none / merge:0.25" in out
    code, out, err = run(capsys, "probe", "--task", "needle", "--frames", 16, "--samples", 1, "--pooling",
                         "merge:0.25:original", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    assert "merge:0.25:original" in out
    code, out, err = run(capsys, "probe", "--task", "needle", "--frames", 16, "--samples", 1, "--pooling",
                         "merge:0.25:gaps", "--out", tmp_path)  # fmt: skip
    assert code != 0 and "REDUCER:KEEP[:original]" in err
