"""Memory discipline: quantized KV cache bytes and drift, the vision stage's flat peak, the
guard, and the analytic 7B figures."""

from __future__ import annotations

import pytest
import torch

from longvid.errors import DoesNotFitError, InvalidRequestError
from longvid.extend.kvcache import cache_bytes, kv_bytes, make_cache
from longvid.extend.pooling import uniform
from longvid.memory import PeakMemory
from longvid.models import load
from longvid.models.checkpoint.registry import REFERENCE_7B
from longvid.models.checkpoint.tiny import save
from longvid.models.inference import budget as budget_mod
from longvid.models.inference.budget import estimate
from longvid.models.inference.generation import forward
from tests.support import SAMPLE


@pytest.fixture(scope="module")
def ov(tiny_models):
    return tiny_models["llava_onevision"]


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quantized_cache_bytes_match_the_bit_width(ov, bits):
    llm = ov
    video = torch.randint(0, 255, (16, 32, 32, 3), dtype=torch.uint8).numpy()
    visual = llm.encode_video(video, frames=16)
    layout = llm.layout("which shape came first ?", visual, visual_window=10_000)
    one_shot = layout.length
    tc = llm.adapter.text_config
    ref_logits, ref_cache = llm.prefill(layout, chunk=one_shot, kv_bits=16)
    block = 64
    cache = make_cache(bits, tc, block=block)
    logits, cache = llm.prefill(layout, chunk=one_shot, kv_bits=bits, cache=cache)
    tokens = layout.embeds.shape[0]
    head_dim = llm.adapter.head_dim()
    layers, kv_heads = tc.num_hidden_layers, tc.num_key_value_heads
    # fp32 on CPU: the unquantized cache holds 4-byte values
    assert cache_bytes(ref_cache) == 2 * kv_bytes(layers, kv_heads, head_dim, tokens, 16)
    # whole blocks quantized (keys in groups of 64 tokens, values of 16 channels = head_dim),
    # the rest of the tokens in full precision
    quantized = tokens // block * block
    tail = 2 * layers * kv_heads * head_dim * (tokens - quantized) * 4
    want = kv_bytes(layers, kv_heads, head_dim, quantized, bits, group=64, value_group=16, scale_bytes=4)
    assert quantized > 0 and cache_bytes(cache) == want + tail
    # one-shot prefill attends over unquantized values: the first token's logits are exact
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    # decoding then reads the quantized cache: small drift, growing as bits fall
    tol = {8: 1e-2, 4: 0.1, 2: 0.6}[bits]
    step = llm.adapter.language_model.get_input_embeddings()(torch.tensor([7]))
    pos = layout.positions.max() + 1
    with torch.inference_mode():
        a = forward(llm.adapter, step, torch.tensor([pos]), ref_cache, last_only=True)[-1]
        b = forward(llm.adapter, step, torch.tensor([pos]), cache, last_only=True)[-1]
    assert 0 < (a - b).abs().max() < tol


def test_kv_bits_in_ask_report(ov):
    answer = ov.ask(SAMPLE, "what colour is the shape with the marker ?", frames=8, kv_bits=4, max_new_tokens=2)
    assert answer.report.kv_bits == 4 and answer.report.kv_backend.startswith("blocks (int4")
    assert answer.report.kv_cache_bytes > 0
    with pytest.raises(InvalidRequestError, match="unknown kv_bits 3; choose from 16, 8, 4, 2"):
        ov.ask(SAMPLE, "q", frames=8, kv_bits=3)


def test_vision_stage_peak_does_not_grow_with_frames(tmp_path):
    # the 7B's frame geometry: 27x27 patches per frame (tiny widths), frames streamed from a file
    llm = load(save("llava_onevision", tmp_path / "ov27", grid=27, patch=2, vision_hidden=32, hidden=64))
    peaks = {}
    for frames in (32, 160):
        llm.encode_video(SAMPLE, frames=frames)  # warm up allocator and caches
        # the higher of two runs: RSS is sampled, and a busy machine can make one run miss
        # its spike (both frame counts get the same two chances)
        for _ in range(2):
            with PeakMemory() as mem:
                visual = llm.encode_video(SAMPLE, frames=frames)
            peaks[frames] = max(peaks.get(frames, 0), mem.added)
        assert visual.tokens_before_pooling == frames * 729 + 1
    pooled_growth = (160 - 32) * 196 * 64 * 4  # the pooled tokens themselves must grow
    # 5x the frames; unpooled features of all of them would add 128 * 729 * 32 * 4 = 11 MiB
    # in the tower alone, and its attention far more
    assert peaks[160] <= peaks[32] + pooled_growth + 24 * 2**20


def test_guard_refuses_what_cannot_fit_and_suggests_only_what_would(ov, monkeypatch):
    grid = ov.video_grid(SAMPLE)
    uniform_256 = ov.estimate(256, ov.schedule("uniform"), grid=grid).beyond_weights
    progressive_256 = ov.estimate(256, ov.schedule("progressive"), grid=grid).beyond_weights
    free = (uniform_256 + progressive_256) // 2
    monkeypatch.setattr(budget_mod, "available_bytes", lambda device: free)
    with pytest.raises(InvalidRequestError, match=r"needs about .* GiB beyond the weights .* try ") as e:
        ov.ask(SAMPLE, "q", frames=256)
    # the advice is data: option -> value, spelled for Python users, the CLI and the page
    assert isinstance(e.value, DoesNotFitError)
    options = [o for o, _ in e.value.alternatives]
    assert {"pooling": "progressive"} in options
    message = str(e.value)
    assert "pooling='progressive'" in message and "--pooling progressive" in e.value.render("cli")
    assert "pooling: progressive" in e.value.render("web") and "--" not in message
    fewer = next(o["frames"] for o in options if "frames" in o)
    assert f"frames={fewer} " in message and f"--frames {fewer} " in e.value.render("cli")
    fits = ov.estimate(fewer, ov.schedule("uniform"), grid=grid).beyond_weights
    assert fits <= free < ov.estimate(2 * fewer, ov.schedule("uniform"), grid=grid).beyond_weights
    # nothing smaller fits: said so, nothing suggested
    monkeypatch.setattr(budget_mod, "available_bytes", lambda device: 1024)
    with pytest.raises(InvalidRequestError, match=r"no smaller setting longvid knows would fit$"):
        ov.ask(SAMPLE, "q", frames=256)


def test_guard_estimates_the_frames_the_video_has(ov, tmp_path, monkeypatch):
    from longvid.errors import FrameRangeWarning
    from longvid.video.synth import write_stamped_video

    short = tmp_path / "short.mp4"
    write_stamped_video(short, 24)
    grid = ov.video_grid(short)
    need = ov.estimate(24, ov.schedule("uniform"), grid=grid).beyond_weights
    monkeypatch.setattr(budget_mod, "available_bytes", lambda device: need + 2**20)
    with pytest.warns(FrameRangeWarning, match="clamped"):  # 24 frames are read, and fit
        answer = ov.ask(short, "q", frames=10_000_000, max_new_tokens=1)
    assert answer.report.frames == 24


def test_guard_names_what_each_alternative_needs(monkeypatch):
    gib = 2**30
    monkeypatch.setattr(budget_mod, "available_bytes", lambda device: 2 * gib)
    need = budget_mod.Estimate(weights=10 * gib, vision=gib, kv_cache=3 * gib, prefill=gib)
    smaller = budget_mod.Estimate(weights=10 * gib, vision=gib // 2, kv_cache=gib, prefill=0)
    too_big = budget_mod.Estimate(weights=10 * gib, vision=gib, kv_cache=2 * gib, prefill=0)
    with pytest.raises(InvalidRequestError, match=r"needs about 5\.0 GiB .* 2\.0 GiB is free .* try x=1 \(1\.5 GiB\)$"):
        budget_mod.guard(need, "cpu", lambda free: [({"x": 1}, smaller), ({"y": 2}, too_big)])
    budget_mod.guard(smaller, "cpu", lambda free: [])  # 1.5 GiB fits in 2


def test_analytic_7b_kv_cache():
    geo = REFERENCE_7B["llava_onevision"]
    est = estimate(geo, 256, 256 * 196, text_tokens=0)
    assert est.kv_cache / 2**30 == pytest.approx(2.68, abs=0.01)  # 2 x 28 x 4 x 128 x 50,176 x 2 bytes
    assert uniform(2).expected_tokens(256, 27, 27) == 50_176


def test_profile_cli_table_json_plot(tmp_path, capsys):
    from longvid.cli import main

    model = save("llava_onevision", tmp_path / "ov", grid=8, patch=4)
    code = main(["profile", "--model", str(model), "--frames", "8,16", "--out", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert code == 0 and "| 16 |" in out
    import json

    rows = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert [r["frames"] for r in rows] == [8, 16]
    assert rows[1]["kv_cache"] > rows[0]["kv_cache"] > 0
    assert rows[1]["analytic_7b"]["visual_tokens"] == 16 * 196 + 1
    assert (tmp_path / "p" / "profile.png").stat().st_size > 1000
    # under a KV budget the cache stops growing with the frames: the budget and the text
    args = ["--frames", "8,16", "--kv-budget", "16", "--out", str(tmp_path / "b")]
    code = main(["profile", "--model", str(model), *args])
    assert code == 0
    rows = json.loads((tmp_path / "b" / "profile.json").read_text())
    assert rows[0]["kv_cache"] == rows[1]["kv_cache"] > 0


def test_vision_estimate_counts_no_more_frames_than_the_request_has():
    geo = REFERENCE_7B["llava_onevision"]
    four, sixteen, many = (estimate(geo, n, n * 196).vision for n in (4, 16, 256))
    assert four * 4 == sixteen  # one chunk of 4 frames, a quarter of a 16-frame chunk
    assert many == sixteen  # chunks of 16 frames at most, whatever the length


def test_guard_suggests_a_kv_budget_that_fits_and_a_budgeted_request_passes(ov, monkeypatch):
    grid = ov.video_grid(SAMPLE)
    full = ov.estimate(256, ov.schedule("uniform"), grid=grid)
    least = ov.estimate(256, ov.schedule("uniform"), grid=grid, kv_cap=1)
    free = least.beyond_weights + full.kv_cache // 2  # room for about half the cache
    monkeypatch.setattr(budget_mod, "available_bytes", lambda device: free)
    with pytest.raises(DoesNotFitError) as e:
        ov.ask(SAMPLE, "q", frames=256)
    budget = next(o["kv_budget"] for o, _ in e.value.alternatives if "kv_budget" in o)
    assert f"--kv-budget {budget} " in e.value.render("cli")
    cap = ov.kv_cap(budget)
    assert ov.estimate(256, ov.schedule("uniform"), grid=grid, kv_cap=cap).beyond_weights <= free
    assert ov.estimate(256, ov.schedule("uniform"), grid=grid, kv_cap=2 * cap).beyond_weights > free
    answer = ov.ask(SAMPLE, "q", frames=256, kv_budget=budget, max_new_tokens=1)  # the advice taken: it runs
    assert answer.report.kv_budget_tokens == cap and answer.report.kv_dropped_tokens > 0
