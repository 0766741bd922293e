"""Extension modes, pooling and positions on tiny models: each mode is the baseline within
its window and really changes something beyond it; pooling keeps the tokens the formulas
say; prefill and step-by-step decoding agree; bad requests fail in one line."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from longvid.errors import InvalidRequestError, ModelLoadError, UnsupportedModelError
from longvid.extend.pooling import pool_grid, progressive, uniform
from longvid.extend.rope import EXTEND_MODES
from longvid.models import load
from longvid.models.families import FAMILIES
from longvid.models.inference.generation import forward
from longvid.models.inference.llm import VideoLLM

QUESTION = "which shape came first ?"


@pytest.fixture(scope="module")
def video():
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)


def last_logits(llm: VideoLLM, frames, extend: str, window: int | None = None, pooling=None) -> torch.Tensor:
    visual = llm.encode_video(frames, frames=len(frames), pooling=pooling)
    logits, _ = llm.prefill(llm.layout(QUESTION, visual, extend, window))
    return logits[-1]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", sorted(EXTEND_MODES))
def test_mode_equals_baseline_at_scale_one_and_differs_beyond(tiny_models, video, family, mode):
    llm = tiny_models[family]
    base = last_logits(llm, video, "none", window=10_000)
    same = last_logits(llm, video, mode, window=10_000)  # W_v far above the video's tokens
    torch.testing.assert_close(same, base, rtol=0, atol=0)
    if mode == "none":
        return
    # a window of 16 visual tokens forces s > 1; global modes need the language window shrunk
    llm.adapter.text_config.max_position_embeddings, saved = 32, llm.adapter.text_config.max_position_embeddings
    try:
        changed = last_logits(llm, video, mode, window=16)
    finally:
        llm.adapter.text_config.max_position_embeddings = saved
    assert not torch.allclose(changed, base, atol=1e-4), f"{mode} changed nothing at s > 1"


def test_ask_reports_scale_and_tokens(tiny_models, video):
    llm = tiny_models["llava_onevision"]
    answer = llm.ask(video, QUESTION, frames=16, extend="visual-yarn", visual_window=64, max_new_tokens=3)
    r = answer.report
    assert r.visual_tokens == 16 * 16 + 1 and r.visual_tokens_before_pooling == 16 * 64 + 1
    assert r.scale == pytest.approx((16 * 16 + 1) / 64, abs=1e-4)
    assert r.extend == "visual-yarn" and r.frames == 16 and r.generated_tokens <= 3
    assert set(r.seconds) >= {"decode", "encode", "prefill", "generate", "total"}
    assert r.peak_memory_bytes > 0
    d = answer.to_dict()
    assert {"answer", "frames", "visual_tokens", "scale"} <= set(d)


@pytest.mark.parametrize("family", FAMILIES)
def test_progressive_pooling_token_counts(tiny_models, video, family):
    llm = tiny_models[family]
    ad = llm.adapter
    native = ad.default_pooling().stride
    schedule = progressive(group=4, high=native, low=2 * native, anchors="fixed")
    visual = llm.encode_video(video, frames=16, pooling=schedule)
    h, w = visual.native_grid
    steps = 16 // ad.frames_per_step
    text = sum(sum(t) for t in visual.step_text or ())  # Qwen3-VL's timestamps between the groups
    expected = schedule.expected_tokens(steps, h, w) + steps * visual.step_extra + visual.extra + text
    assert visual.embeds.shape[0] == expected
    uniform_tokens = llm.encode_video(video, frames=16).embeds.shape[0]
    assert expected < uniform_tokens
    # anchors every 4th step keep the native stride
    assert visual.strides == [native if i % 4 == 0 else 2 * native for i in range(steps)]
    # the default anchors (where the video changes) keep one anchor per group, anywhere in it
    changed = llm.encode_video(video, frames=16, pooling=progressive(group=4, high=native, low=2 * native))
    assert changed.count == visual.count
    assert [changed.strides[g : g + 4].count(native) for g in range(0, steps, 4)] == [1] * -(-steps // 4)


def test_progressive_formula_on_the_real_grid():
    # LLaVA-OneVision 7B geometry: 27x27 per frame, bilinear to 14x14 (196) or 7x7 (49)
    schedule = progressive(group=4, high=2, low=4)
    assert schedule.expected_tokens(256, 27, 27) == 64 * (196 + 3 * 49)
    assert uniform(2).expected_tokens(256, 27, 27) == 256 * 196
    saved = 1 - schedule.expected_tokens(256, 27, 27) / uniform(2).expected_tokens(256, 27, 27)
    assert saved == pytest.approx(0.5625)
    grid = torch.randn(3, 27, 27, 8)
    assert pool_grid(grid, 2, "bilinear").shape == (3, 14, 14, 8)
    assert pool_grid(grid, 4, "average").shape == (3, 7, 7, 8)


def test_change_anchors_pick_the_frames_that_change():
    # 12 frames in groups of 4: scene A until frame 4, scene B from frame 5, C at frame 11
    grid = torch.zeros(12, 6, 6, 4)
    grid[5:11] = 2.0
    grid[11] = -3.0
    schedule = progressive(group=4, high=1, low=2, anchors="change")
    state = schedule.start()
    strides = schedule.strides(grid[:4], state) + schedule.strides(grid[4:], state)  # streamed in two chunks
    assert schedule.strides(grid) == strides  # the schedule itself holds no state: whole equals streamed
    anchors = [i for i, s in enumerate(strides) if s == 1]
    # group 0 starts at its first frame; then the frame most unlike the last anchor
    assert anchors == [0, 5, 11]
    fixed = progressive(group=4, high=1, low=2, anchors="fixed").strides(grid)
    assert [i for i, s in enumerate(fixed) if s == 1] == [0, 4, 8]


@pytest.mark.parametrize("family", ["qwen2_vl", "llava_onevision"])
@pytest.mark.parametrize("mode", ["none", "visual-pi"])
def test_prefill_and_stepwise_decode_agree(tiny_models, family, mode):
    llm = tiny_models[family]
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 255, (64, 32, 32, 3), dtype=np.uint8)  # 64 frames: temporal ids reach far
    visual = llm.encode_video(frames, frames=64)
    layout = llm.layout(QUESTION, visual, mode, visual_window=64)
    embeds, positions = layout.embeds, layout.positions
    # teacher-force 4 more tokens both ways: one long prefill vs prefill + step-by-step
    extra = torch.tensor([5, 9, 13, 17])
    extra_embeds = llm.adapter.language_model.get_input_embeddings()(extra)
    nxt = positions.max() + 1 + torch.arange(4, dtype=positions.dtype)
    extra_pos = nxt.expand(3, -1) if positions.ndim == 2 else nxt
    longer = replace(
        layout, embeds=torch.cat([embeds, extra_embeds]), positions=torch.cat([positions, extra_pos], dim=-1)
    )
    full, _ = llm.prefill(longer, all_logits=True)
    logits, cache = llm.prefill(layout, chunk=37)  # chunked, too
    steps = [logits[-1]]
    with torch.inference_mode():
        for k in range(4):
            p = extra_pos[..., k : k + 1]
            steps.append(forward(llm.adapter, extra_embeds[k : k + 1], p, cache, last_only=True)[-1])
    torch.testing.assert_close(torch.stack(steps), full[-5:], rtol=1e-4, atol=1e-4)
    if positions.ndim == 2:
        end = layout.spans[0].length + layout.spans[1].length
        assert positions[0, end] == positions[:, :end].max() + 1  # text after the video starts past it


def test_bad_requests(tiny_models, video, tmp_path):
    llm = tiny_models["llava_onevision"]
    with pytest.raises(InvalidRequestError, match="frames must be >= 1"):
        llm.ask(video, QUESTION, frames=0)
    with pytest.raises(InvalidRequestError, match="unknown extend 'rope-magic'"):
        llm.ask(video, QUESTION, extend="rope-magic")
    with pytest.raises(InvalidRequestError, match="larger than the 8x8 feature grid"):
        llm.ask(video, QUESTION, pooling="progressive", high=2, low=16)
    with pytest.raises(InvalidRequestError, match="unknown pooling"):
        llm.ask(video, QUESTION, pooling="max")
    from transformers import LlamaConfig

    folder = tmp_path / "llama"
    LlamaConfig(hidden_size=16, num_attention_heads=2, num_hidden_layers=1, intermediate_size=32).save_pretrained(
        folder
    )
    supported = ", ".join(sorted(FAMILIES))
    with pytest.raises(UnsupportedModelError, match=rf"'llama' is not supported; supported: {supported}$"):
        load(folder)
    with pytest.raises(ModelLoadError, match="no such model folder"):
        load(tmp_path / "missing")


@pytest.mark.parametrize("family", FAMILIES)
def test_the_trained_frame_count_is_exactly_the_visual_window(tiny_models, family):
    """W_v counts every visual token of the trained length (Video-LLaVA's CLS per frame,
    LLaVA-OneVision's newline): there the scale is 1 and each extension mode is the model's own
    RoPE; one step more and it is above 1."""
    llm = tiny_models[family]
    step = llm.adapter.frames_per_step
    trained = llm.trained_frames
    for frames, above in ((trained, False), (trained + step, True)):
        video = np.zeros((frames, 32, 32, 3), np.uint8)
        layout = llm.layout(QUESTION, llm.encode_video(video, frames=frames), "visual-pi")
        assert (layout.plan.scale > 1) == above, (frames, layout.plan.scale, layout.visual_window)
