"""A KV budget: the cache holds at most ``cap`` visual rows a layer while the video streams in,
keeping what repeats least; text is never dropped, kept rows keep their keys (positions), and
several questions still share one compressed prefix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from longvid.errors import InvalidRequestError
from longvid.extend.kvbudget import KVBudget, parse_kv_budget, rows_to_keep, step_scores
from longvid.extend.kvcache import BlockKVCache
from longvid.extend.quantize import dequantize, quantize
from longvid.models.inference import chunks, generation
from longvid.models.inference.request import AskOptions


@pytest.mark.parametrize(
    "given,expected",
    [(4096, KVBudget(tokens=4096)), ("4096", KVBudget(tokens=4096)), ("300 tokens", KVBudget(tokens=300)),
     ("512MiB", KVBudget(bytes=512 * 2**20)), ("1.5GiB", KVBudget(bytes=3 * 2**29)),
     ("800MB", KVBudget(bytes=8 * 10**8)), ("64 kib", KVBudget(bytes=64 * 1024))],
)  # fmt: skip
def test_budget_forms(given, expected):
    assert parse_kv_budget(given) == expected
    assert AskOptions(kv_budget=given).budget == expected


@pytest.mark.parametrize(
    "bad", ["lots", "0", "1.5", "-5MiB", "5 parsecs", True, "0.0000001KiB", "9" * 400, "9" * 400 + "GiB", 10**400]
)
def test_malformed_budgets_are_refused_in_one_line(bad):
    with pytest.raises(InvalidRequestError, match="kv_budget"):
        AskOptions(kv_budget=bad)


def test_a_budget_is_reported_as_given():
    assert [parse_kv_budget(v).describe() for v in ("64KiB", "800MB", 4096, "12 tokens")] == [
        "64KiB", "800MB", "4096 tokens", "12 tokens"
    ]  # fmt: skip


def test_the_prefill_chunk_is_part_of_a_runs_identity_only_under_a_budget():
    assert "prefill_chunk" not in AskOptions(prefill_chunk=512).identity()
    assert AskOptions(prefill_chunk=512, kv_budget=4096).identity()["prefill_chunk"] == 512


def test_a_size_becomes_tokens_by_what_one_token_costs():
    assert KVBudget(bytes=10_000).cap(bytes_per_token=96.0) == 104
    with pytest.raises(InvalidRequestError, match="holds no token"):
        KVBudget(bytes=50).cap(bytes_per_token=96.0)
    # quantized (24 bytes a token, 96 unquantized, blocks of 64): up to 63 rows stay unquantized
    assert KVBudget(bytes=10_000).cap(24.0, 96.0, lambda t: 64) == (10_000 - 63 * 96) // 24 + 63
    assert KVBudget(bytes=3_000).cap(24.0, 96.0, lambda t: 64) == 31  # all of them in the tail


def test_a_repeated_token_scores_zero_and_a_new_one_its_value_norm():
    d = 8
    first = torch.randn(2, 3, d)  # kv heads, three tokens of step 0
    novel = torch.randn(2, 1, d)
    values = torch.cat([first, first[:, :1], novel], dim=1)  # step 1: a repeat and a new token
    steps = torch.tensor([0, 0, 0, 1, 1])
    scores, _ = step_scores(values, steps, steps >= 0, None)
    norms = values.norm(dim=-1).mean(0)
    torch.testing.assert_close(scores[:3], norms[:3])  # no step before: nothing repeated
    assert scores[3].abs() < 1e-5  # the repeat
    unit = torch.nn.functional.normalize(values, dim=-1)
    redundancy = torch.einsum("hd,hjd->hj", unit[:, 4], unit[:, :3]).mean(0).max().clamp(0, 1)
    torch.testing.assert_close(scores[4], (1 - redundancy) * norms[4])
    marks = torch.tensor([-1, -1, 0, 0, 1])
    text, _ = step_scores(values, marks, marks >= 0, None)
    assert math.isinf(text[0]) and math.isinf(text[1])


def test_a_step_split_across_chunks_scores_as_in_one_chunk():
    values = torch.randn(2, 12, 4)
    steps = torch.tensor([-1, 0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1])
    whole, _ = step_scores(values, steps, steps >= 0, None)
    parts, recent = [], None
    for sl in (slice(0, 5), slice(5, 8), slice(8, 12)):  # steps 1 and 2 each cut in two
        s, recent = step_scores(values[:, sl], steps[sl], steps[sl] >= 0, recent)
        parts.append(s)
    torch.testing.assert_close(torch.cat(parts), whole)


def test_a_steps_text_and_cls_rows_go_with_its_grid():
    values = torch.randn(2, 9, 4)
    steps = torch.tensor([-1, 0, 0, 0, 0, 1, 1, 1, -1])  # text; step 0: a timestamp, 3 grid rows; step 1 ...
    grid = torch.tensor([False, False, True, True, True, False, True, True, False])
    scores, _ = step_scores(values, steps, grid, None)
    assert scores[1] == scores[2:5].max() and scores[5] == scores[6:8].max()
    assert math.isinf(scores[0]) and math.isinf(scores[8])


def test_chunks_end_with_the_video_and_between_steps():
    assert chunks.chunk_sizes(10, 4, offset=3) == [1, 4, 4, 1]  # aligned as the whole prompt's
    assert chunks.chunk_sizes(10, 4, cut=7) == [4, 3, 3]
    # steps begin at 2, 5, 8: passes end at the last step start that fits, the video's end at 11
    assert chunks.chunk_sizes(14, 4, cut=11, bounds=[2, 5, 8]) == [2, 3, 3, 3, 3]
    assert chunks.chunk_sizes(14, 8, cut=11, bounds=[2, 5, 8]) == [8, 3, 3]
    assert chunks.chunk_sizes(7, 2, cut=7, bounds=[3]) == [2, 1, 2, 2]  # a step longer than a pass is cut


def test_rows_to_keep_keeps_text_and_the_best_visual_rows():
    scores = torch.tensor([math.inf, 0.1, 0.9, 0.5, math.inf, 0.3])
    keep = rows_to_keep(scores, 2)
    assert keep.tolist() == [True, False, True, True, True, False]
    assert rows_to_keep(scores, 4) is None  # four visual rows already fit


def _filled_cache(bits: int, rows: int = 96, block: int = 32):
    torch.manual_seed(0)
    cache = BlockKVCache(2, bits=bits, block=block, group=16)
    cache.track()
    keys, values = torch.randn(1, 2, rows, 16), torch.randn(1, 2, rows, 16)
    steps = torch.cat([torch.full((8,), -1), torch.arange(rows - 8) // 8])  # text, then 8-token steps
    for start in range(0, rows, 24):  # chunks of 24 rows
        sl = slice(start, start + 24)
        cache.expect(steps[sl])
        for layer in cache.layers:
            layer.update(keys[..., sl, :], values[..., sl, :])
    cache.expect(None)
    return cache, keys, values


def test_compaction_keeps_exactly_the_chosen_rows_unquantized():
    cache, keys, values = _filled_cache(16)
    layer = cache.layers[0]
    keep = rows_to_keep(layer.scores, 40)
    assert cache.compact(40) == 88 - 40
    k, v = layer.materialize()
    torch.testing.assert_close(k, keys[..., keep, :], rtol=0, atol=0)
    torch.testing.assert_close(v, values[..., keep, :], rtol=0, atol=0)
    assert layer.get_seq_length() == 48 and torch.isfinite(layer.scores).sum() == 40
    assert all(not math.isfinite(s) for s in layer.scores[:8])  # the text stayed
    assert cache.compact(40) == 0  # within the budget: nothing more


def test_compaction_of_quantized_blocks_needs_no_full_copy_and_keeps_values():
    cache, _, _ = _filled_cache(4)
    layer = cache.layers[0]
    before_k, before_v = layer.materialize()
    keep = rows_to_keep(layer.scores, 40)
    cache.compact(40)
    k, v = layer.materialize()
    # values are quantized per token: gathering rows and quantizing them again changes nothing
    torch.testing.assert_close(v, before_v[..., keep, :], rtol=1e-5, atol=1e-5)
    # keys are quantized per channel over 16-token groups: on the new groups' 4-bit grid
    step = (k.amax() - k.amin()) / 15
    assert (k - before_k[..., keep, :]).abs().max() <= step / 2 + 1e-5
    q = quantize(before_k[..., keep, :][..., :32, :], 4, 16, axis=-2)
    assert dequantize(q).shape == k[..., :32, :].shape


@pytest.fixture(scope="module")
def needle(testbed):
    from longvid.probes.tasks import make_item, render_frames

    item = make_item("needle", 2_000_123, 64)
    return item, testbed.pool_grid(testbed.encode_grid(render_frames(item)), testbed.schedule("uniform"))


def test_a_budget_the_video_fits_in_changes_nothing(testbed, needle):
    item, visual = needle
    layout = lambda: testbed.layout(item.question, visual, "visual-yarn")  # noqa: E731
    full, _ = testbed.prefill(layout(), chunk=256)
    budgeted, cache = testbed.prefill(layout(), chunk=256, kv_cap=visual.count)
    torch.testing.assert_close(budgeted, full)
    assert cache.dropped_tokens == 0


def _question_over_kept_rows(llm, question, visual, cap, extend):
    """(the budgeted prefill's logits, a reference: the question prefilled over a cache built
    by hand from the unbudgeted cache's rows, chosen by scores recomputed from its values)."""
    layout = llm.layout(question, visual, extend)
    end = generation.visual_end(layout.spans)
    logits, cache = llm.prefill(layout, chunk=layout.length, kv_cap=cap)
    full_layout = llm.layout(question, visual, extend)
    _, full = llm.prefill(
        generation.Layout(full_layout.embeds[:end], full_layout.spans[:2], full_layout.plan,
                          full_layout.positions[..., :end], full_layout.visual_window, extend),
        chunk=end,
    )  # fmt: skip
    steps, grid = generation.grid_steps(layout.spans)
    by_hand = BlockKVCache(len(full.layers))
    for mine, theirs in zip(by_hand.layers, full.layers, strict=True):
        k, v = theirs.materialize()
        scores, _ = step_scores(v[0], steps[:end], grid[:end], None)
        keep = rows_to_keep(scores, cap)
        mine.update(k[..., keep, :], v[..., keep, :])
    rest = generation.Layout(full_layout.embeds[end:], full_layout.spans[2:], full_layout.plan,
                             full_layout.positions[..., end:], full_layout.visual_window, extend,
                             offset=end)  # fmt: skip
    expected, _ = llm.prefill(rest, cache=by_hand, chunk=rest.length)
    return logits, expected, cache, layout


def test_the_question_attends_to_the_kept_rows_of_the_full_cache(testbed, needle):
    item, visual = needle
    logits, expected, cache, layout = _question_over_kept_rows(testbed, item.question, visual, 200, "visual-yarn")
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert cache.dropped_tokens == visual.count - 1 - 200  # the newline is never dropped
    assert cache.layers[0].get_seq_length() == layout.length - (visual.count - 1 - 200)


def test_kept_tokens_keep_their_mrope_positions_and_times(tiny_models):
    """Qwen2.5-VL: the kept rows' keys carry their (t, h, w), t from real time, as in the full
    cache, and the text after the video continues past the whole video's positions."""
    llm = tiny_models["qwen2_5_vl"]
    frames = np.random.default_rng(4).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    visual = llm.encode_video(frames, 16)
    assert visual.step_positions is not None
    logits, expected, cache, _ = _question_over_kept_rows(llm, "what is shown ?", visual, 20, "visual-pi")
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert cache.dropped_tokens == visual.count - 20


@pytest.fixture(scope="module")
def video():
    return np.random.default_rng(3).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_5_vl", "qwen3_vl", "qwen3_5"])
@pytest.mark.parametrize("kv_bits", [16, 4])
def test_many_questions_under_a_budget_equal_asking_alone(tiny_models, video, family, kv_bits):
    """One compressed prefix for several questions: the question-agnostic score and chunks
    that end with the video make each answer equal asking alone (4-bit: blocks re-quantized)."""
    llm = tiny_models[family]
    questions = ["what colour is the square ?", "which shape came first ?", "how many circles ?"]
    options = dict(frames=16, extend="visual-pi", visual_window=64, kv_bits=kv_bits, kv_budget=40, prefill_chunk=24,
                   max_new_tokens=4)  # fmt: skip
    together = llm.ask(video, questions, **options)
    alone = [llm.ask(video, q, **options) for q in questions]
    assert [a.token_ids for a in together] == [a.token_ids for a in alone]
    assert together[0].report.shared_prefix_tokens > together[0].report.visual_tokens
    assert {a.report.kv_dropped_tokens for a in together + alone} == {together[0].report.kv_dropped_tokens}
    assert together[0].report.kv_dropped_tokens > 0


def test_the_budget_holds_on_every_family(tiny_models, video):
    for family, llm in tiny_models.items():
        answer = llm.ask(video, "what is shown ?", frames=16, kv_budget=24, prefill_chunk=32, max_new_tokens=3)
        r = answer.report
        layout = llm.layout("what is shown ?", llm.encode_video(video, 16))
        # a step's rows: its grid, and its timestamp text (Qwen3) or CLS row (Video-LLaVA); not a newline
        step_rows = int((generation.grid_steps(layout.spans)[0] >= 0).sum())
        assert r.kv_budget_tokens == 24, family
        assert r.kv_dropped_tokens == step_rows - 24, family
        together = llm.ask(video, ["what is shown ?", "what colour ?"], frames=16, kv_budget=24, prefill_chunk=32,
                           max_new_tokens=3)  # fmt: skip
        assert together[0].token_ids == answer.token_ids, family
        assert together[0].report.kv_dropped_tokens == r.kv_dropped_tokens, family


def test_a_budget_in_mib_is_held_by_the_cache(testbed):
    from longvid.bundled import SAMPLE_VIDEO

    answer = testbed.ask(SAMPLE_VIDEO, "what colour is the shape with the marker ?", frames=128, kv_budget="1MiB")
    r = answer.report
    per_token = 3 * 2 * 2 * 32 * 4  # layers x (keys, values) x kv heads x head dim x fp32
    assert r.kv_budget_tokens == 2**20 // per_token
    text = r.prompt_tokens - r.visual_tokens + 1 + r.generated_tokens  # the newline is kept as text is
    assert r.kv_cache_bytes == (r.kv_budget_tokens + text) * per_token


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_spilled_blocks_read_back_bit_for_bit(dtype):
    from longvid.models.inference.spill import BlockStore, Rows, load

    store = BlockStore("cpu")
    blocks = [torch.randn(n, 3, 5).to(dtype) for n in (4, 0, 7, 2)]
    held = [store.put(b) for b in blocks]
    for b, h in zip(blocks, held, strict=True):
        assert torch.equal(load(h), b) and h.shape == tuple(b.shape)
    rows = Rows(held)
    joined = torch.cat(blocks)
    assert len(rows) == 13 and torch.equal(rows[3:12], joined[3:12]) and torch.equal(rows[5:5], joined[5:5])
    assert load(held[0].on("cpu", torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("family", ["llava_onevision", "qwen3_vl"])
def test_a_spilled_video_prefills_as_one_held_in_memory(tiny_models, video, family):
    """Under a budget the pooled blocks wait in a file (Qwen3-VL: with its timestamps and
    DeepStack rows); the prefill reads them a block at a time and gives the same logits."""
    from longvid.models.inference.encoding import encode_video
    from longvid.models.inference.spill import BlockStore, SpilledBlock

    llm = tiny_models[family]
    spilled = encode_video(llm.adapter, video, 16, llm.schedule("uniform"), spill=BlockStore("cpu"))
    assert all(isinstance(b, SpilledBlock) for b in spilled.blocks if b.shape[0] > 1)  # a newline may stay
    plain = llm.encode_video(video, 16)
    expected, _ = llm.prefill(llm.layout("what is shown ?", plain, consume=True), chunk=24, kv_cap=30)
    logits, cache = llm.prefill(llm.layout("what is shown ?", spilled, consume=True), chunk=24, kv_cap=30)
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    assert cache.dropped_tokens > 0


@pytest.mark.parametrize("bits,budget", [(8, "16KiB"), (4, "64KiB"), (2, "256KiB"), (4, "1MiB")])
def test_a_size_budget_at_a_quantized_width_is_held_in_bytes(testbed, bits, budget):
    """The rows short of a whole block stay unquantized: the cap counts them so, and the cache
    holds the budget plus the prompt's text (unquantized rows too, at worst)."""
    from longvid.bundled import SAMPLE_VIDEO
    from longvid.models.inference.chunks import budget_block

    assert budget_block(4096, 4) == 256 and budget_block(10**6, 4) == 1024 and budget_block(100, 2) == 64
    assert budget_block(4096, 16) == 1024
    r = testbed.ask(SAMPLE_VIDEO, "what colour is the shape with the marker ?", frames=256, kv_budget=budget,
                    kv_bits=bits).report  # fmt: skip
    text = r.prompt_tokens - r.visual_tokens + 1 + r.generated_tokens
    fp_row = 3 * 2 * 2 * 32 * 4
    assert r.kv_dropped_tokens > 0 and r.kv_budget == budget
    assert r.kv_cache_bytes <= parse_kv_budget(budget).bytes + text * fp_row


def test_compare_and_chat_keep_the_budget_and_the_video_spilled(testbed, monkeypatch):
    from longvid.bundled import SAMPLE_VIDEO
    from longvid.models.inference import generation as gen
    from longvid.models.inference.compare import compare
    from longvid.models.inference.spill import SpilledBlock

    rows = compare(testbed, SAMPLE_VIDEO, "what colour ?", [{"frames": 64}], kv_budget=100)
    assert rows[0][1].report.kv_budget_tokens == 100
    seen = []
    prefill = gen.prefill

    def spy(adapter, layout, **kw):
        seen.append(isinstance(layout.embeds, list) and any(isinstance(p, SpilledBlock) for p in layout.embeds))
        return prefill(adapter, layout, **kw)

    monkeypatch.setattr(gen, "prefill", spy)
    session = testbed.chat(SAMPLE_VIDEO, frames=64, kv_budget=100)  # the testbed asks before the video
    first = session.ask("what colour ?")
    second = session.ask("which came first ?")
    assert seen == [True, True]  # each prompt read the spilled video back a block at a time
    assert first.report.kv_dropped_tokens == second.report.kv_dropped_tokens == 64 * 16 - 100
    two = testbed.ask(SAMPLE_VIDEO, ["what colour ?", "which came first ?"], frames=64, kv_budget=100)
    assert seen[2:] == [True, True] and two[0].text == first.text


@pytest.fixture(scope="module")
def hour_video(tmp_path_factory):
    """An hour of procedural video at 2 fps (7,200 frames, 64x64): written in about a second."""
    from longvid.video.synth import random_scene, write_video

    path = tmp_path_factory.mktemp("hour") / "hour.mp4"
    write_video(random_scene(0, 7200, width=64, height=64, fps=2), path)
    return path


def test_an_hour_of_video_under_a_budget_from_the_command_line(hour_video, capsys):
    import json

    from tests.support import run

    question = "what colour is the shape with the marker ?"
    code, out, err = run(capsys, "ask", hour_video, question, "--frames", 1024, "--kv-budget", "1MiB", "--json")
    assert code == 0, err
    r = json.loads(out)
    per_token = 3 * 2 * 2 * 32 * 4  # the testbed: layers x (keys, values) x kv heads x head dim x fp32
    assert r["frames"] == 1024 and r["timestamps"][-1] > 3590  # the whole hour
    assert r["kv_budget"] == "1MiB" and r["kv_budget_tokens"] == 2**20 // per_token
    assert r["kv_dropped_tokens"] == 1024 * 16 - r["kv_budget_tokens"]
    text = r["prompt_tokens"] - r["visual_tokens"] + 1 + r["generated_tokens"]
    assert r["kv_cache_bytes"] == (r["kv_budget_tokens"] + text) * per_token  # the budget, and the text
    code, out, _ = run(capsys, "ask", hour_video, question, "--frames", 64, "--kv-budget", "1MiB")
    assert code == 0 and "budget 1MiB" in out and "dropped" in out


def test_an_hour_of_video_under_a_budget_on_a_real_geometry(hub_dirs, hour_video):
    """Qwen2.5-VL-3B's released config (its processor, M-RoPE with absolute time), random
    weights, shrunk widths: the budget holds over the hour as on the testbed."""
    from longvid.models.checkpoint.files import read_checkpoint
    from longvid.models.checkpoint.registry import from_model
    from longvid.models.checkpoint.tiny import from_real_config

    files = read_checkpoint(hub_dirs["qwen2_5_vl"])
    llm = from_model(from_real_config(files.config), files)
    answer = llm.ask(hour_video, "what happens ?", frames=128, kv_budget=256, max_new_tokens=2)
    r = answer.report
    layout = llm.layout("what happens ?", llm.encode_video(hour_video, 128))
    step_rows = int((generation.grid_steps(layout.spans)[0] >= 0).sum())
    assert r.kv_budget_tokens == 256 and r.kv_dropped_tokens == step_rows - 256
    assert r.timestamps[-1] > 3590


def test_a_full_disk_while_spilling_is_one_line(monkeypatch):
    from longvid.errors import LongvidError
    from longvid.models.inference.spill import BlockStore

    store = BlockStore("cpu")

    def full(_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.file, "write", full)
    with pytest.raises(LongvidError, match=r"No space left on device, 0 MiB written.*TMPDIR"):
        store.put(torch.ones(4, 4))


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_5", "video_llava"])
def test_the_cache_stops_growing_with_the_video_where_steps_carry_text_or_cls_rows(tiny_checkpoints, hour_video,
                                                                                   family):  # fmt: skip
    """Qwen3's timestamps and Video-LLaVA's CLS rows count against the budget: four times the
    frames, the same cache (the prompt's text, the budget, one generated token at most)."""
    from longvid.models import load

    llm = load(tiny_checkpoints[family])
    held = [llm.ask(hour_video, "what ?", frames=n, kv_budget=48, max_new_tokens=1).report for n in (16, 64)]
    assert held[1].kv_dropped_tokens > held[0].kv_dropped_tokens > 0
    row = held[0].kv_cache_bytes / (held[0].prompt_tokens - held[0].kv_dropped_tokens + held[0].generated_tokens)
    assert abs(held[1].kv_cache_bytes - held[0].kv_cache_bytes) <= row


def test_two_requests_at_once_with_and_without_a_budget(testbed):
    """Budgets are the request's: a budgeted and an unbudgeted ask on one model, at once, each
    equal to asking alone."""
    from concurrent.futures import ThreadPoolExecutor

    from longvid.bundled import SAMPLE_VIDEO

    question = "what colour is the shape with the marker ?"
    settings = [dict(frames=64, kv_budget=100), dict(frames=64), dict(frames=64, kv_budget="64KiB", kv_bits=4)]
    alone = [testbed.ask(SAMPLE_VIDEO, question, **o).report for o in settings]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(testbed.ask, SAMPLE_VIDEO, question, **o) for o in settings]
        together = [f.result().report for f in futures]
    for a, b in zip(alone, together, strict=True):
        held = lambda r: (r.kv_dropped_tokens, r.kv_cache_bytes, r.kv_budget)  # noqa: E731
        assert held(a) == held(b)
    assert together[1].kv_dropped_tokens == 0 and together[0].kv_dropped_tokens == 64 * 16 - 100
