"""With extension off and the family's own pooling, longvid's logits equal the plain
transformers forward on the same inputs, for every family (tiny random models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

QUESTION = "what colour is the square with the marker ?"


@pytest.fixture(scope="session")
def frames_array():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)


def ours(llm, frames, extend="none"):
    visual = llm.encode_video(frames, frames=len(frames))
    layout = llm.layout(QUESTION, visual, extend)
    logits, _ = llm.prefill(layout, all_logits=True)
    return logits, layout.spans, layout.positions, visual


def hf_inputs(llm, spans):
    ad = llm.adapter
    prefix, suffix = ad.prompt_ids(QUESTION)
    video = spans[1].length
    return torch.tensor([prefix + [ad.config.video_token_id] * video + suffix])


def test_llava_onevision_equals_transformers(tiny_models, frames_array):
    torch.manual_seed(0)
    llm = tiny_models["llava_onevision"]
    logits, spans, positions, visual = ours(llm, frames_array)
    assert visual.embeds.shape[0] == 8 * 16 + 1  # 8x8 grid -> bilinear 4x4, plus the newline
    assert torch.equal(positions, torch.arange(positions.shape[0]))
    input_ids = hf_inputs(llm, spans)
    pixel_values = llm.adapter.pixels(frames_array).values[None]
    with torch.inference_mode():
        ref = llm.adapter.model(input_ids=input_ids, pixel_values_videos=pixel_values).logits[0]
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_vl_equals_transformers_given_the_same_positions(tiny_models, frames_array, family):
    llm = tiny_models[family]
    logits, spans, positions, _ = ours(llm, frames_array)
    input_ids = hf_inputs(llm, spans)
    batch = llm.adapter.pixels(frames_array)
    pixel_values, grid_thw = batch.values, torch.tensor([batch.grid_thw])
    with torch.inference_mode():
        ref = llm.adapter.model(
            input_ids=input_ids, pixel_values_videos=pixel_values, video_grid_thw=grid_thw,
            position_ids=positions[:, None, :],
        ).logits[0]  # fmt: skip
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["qwen2_vl"])
def test_qwen_positions_match_transformers_up_to_the_text_after_the_video(tiny_models, frames_array, family):
    llm = tiny_models[family]
    _, spans, positions, _ = ours(llm, frames_array)
    input_ids = hf_inputs(llm, spans)
    types = (input_ids == llm.adapter.config.video_token_id).int() * 2
    grid_thw = torch.tensor([llm.adapter.pixels(frames_array).grid_thw])
    ref, _ = llm.adapter.model.model.get_rope_index(input_ids, types, video_grid_thw=grid_thw)
    end_of_video = spans[0].length + spans[1].length
    assert torch.equal(positions[:, :end_of_video], ref[:, 0, :end_of_video])
    # longvid: text resumes one past the video's largest position
    assert positions[:, end_of_video].tolist() == [int(positions[:, :end_of_video].max()) + 1] * 3


@pytest.mark.parametrize("family", ["llava_next_video", "video_llava"])
def test_llava_next_video_and_video_llava_equal_transformers(tiny_models, frames_array, family):
    llm = tiny_models[family]
    logits, spans, _, visual = ours(llm, frames_array)
    per_frame = 16 if family == "llava_next_video" else 64 + 1  # 8x8 grid: pooled 4x4 / all patches + CLS
    assert visual.embeds.shape[0] == 8 * per_frame
    input_ids = hf_inputs(llm, spans)
    pixel_values = llm.adapter.pixels(frames_array).values[None]
    with torch.inference_mode():
        ref = llm.adapter.model(input_ids=input_ids, pixel_values_videos=pixel_values).logits[0]
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)
