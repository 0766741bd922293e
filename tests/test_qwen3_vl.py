"""Qwen3-VL (dense and MoE): the prompt with timestamps (the release processor's layout), the
video size from a budget over all frames, positions equal to transformers' ``get_rope_index``,
and, with no extension and the family's own pooling, logits equal to transformers' forward
(DeepStack included), also when the groups straddle prefill chunks. References are written
here from the processor's and model's rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import longvid
from longvid.models.checkpoint.registry import read_adapter
from longvid.video import probe, sample_frames

QUESTION = "what colour is the square ?"


@pytest.fixture(scope="module")
def frames_array():
    return np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_vl_moe"])
@pytest.mark.parametrize("chunk", [None, 16])
def test_logits_and_positions_equal_transformers(tiny_models, tiny_checkpoints, frames_array, family, chunk):
    llm = tiny_models[family]
    ad = llm.adapter
    layout = llm.layout(QUESTION, llm.encode_video(frames_array, 8), "none")
    logits, _ = llm.prefill(layout, chunk=chunk, all_logits=True)
    inputs = longvid.prepare(tiny_checkpoints[family], frames_array, QUESTION)
    with torch.inference_mode():
        ref = ad.model(**inputs).logits[0]
        positions, _ = ad.model.model.get_rope_index(
            inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"]
        )
    assert torch.equal(positions[:, 0], layout.positions)
    assert layout.deepstack is not None and int(layout.visual_mask.sum()) == layout.deepstack.shape[0]
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)


def reference_size(frames: int, height: int, width: int, lo: int, hi: int, factor: int = 32) -> tuple[int, int]:
    """transformers' Qwen3VLVideoProcessor ``smart_resize``: the budget counts every frame."""
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    h, w, t = round(height / factor) * factor, round(width / factor) * factor, round(frames / 2) * 2
    if t * h * w > hi:
        beta = math.sqrt(frames * height * width / hi)
        h, w = (
            max(factor, math.floor(height / beta / factor) * factor),
            max(factor, math.floor(width / beta / factor) * factor),
        )
    elif t * h * w < lo:
        beta = math.sqrt(lo / (frames * height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


@pytest.mark.parametrize("video,frames", [("landscape", 8), ("portrait", 6), ("bigbuckbunny", 64)])
def test_prepare_on_the_real_folder_writes_the_release_processors_prompt(hub_dirs, odd_videos, real_videos, video,
                                                                          frames):  # fmt: skip
    folder = hub_dirs["qwen3_vl"]
    path = odd_videos.get(video) or next(v for v in real_videos if v.name == f"{video}.mp4")
    info = probe(path)
    inputs = longvid.prepare(folder, path, "What happens?", frames=frames)
    ad = read_adapter(folder)
    size = ad.preprocess["size"]
    h, w = reference_size(frames, info.height, info.width, size["shortest_edge"], size["longest_edge"])
    steps = frames // 2
    assert inputs["video_grid_thw"].tolist() == [[steps, h // 16, w // 16]]
    assert inputs["pixel_values_videos"].shape == (steps * (h // 16) * (w // 16), 3 * 2 * 16 * 16)
    # the prompt: the template's video markup replaced whole by the groups, each with its time
    indices = sample_frames(path, frames).indices.tolist()
    fps = float(info.fps)
    times = [(indices[i] / fps + indices[i + 1] / fps) / 2 for i in range(0, frames, 2)]
    per_group = (h // 32) * (w // 32)
    groups = "".join(f"<{t:.1f} seconds><|vision_start|>" + "<|video_pad|>" * per_group + "<|vision_end|>"
                     for t in times)  # fmt: skip
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
    text = ad.tokenizer.apply_chat_template(messages, chat_template=ad.template, tokenize=False,
                                            add_generation_prompt=True)  # fmt: skip
    text = text.replace("<|vision_start|><|video_pad|><|vision_end|>", groups)
    want = ad.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert inputs["input_ids"][0].tolist() == want
    video_id = ad.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert inputs["mm_token_type_ids"][0].tolist() == [2 if i == video_id else 0 for i in want]


def test_inspect_and_a_random_weight_model_of_the_real_config(hub_dirs, capsys):
    from longvid.models.checkpoint.files import read_checkpoint
    from longvid.models.checkpoint.registry import from_model
    from longvid.models.checkpoint.tiny import from_real_config
    from tests.support import run

    code, out, err = run(capsys, "inspect", "--model", hub_dirs["qwen3_vl"], "--json")
    assert code == 0, err
    assert '"family": "qwen3_vl"' in out
    files = read_checkpoint(hub_dirs["qwen3_vl"])
    llm = from_model(from_real_config(files.config), files)
    assert llm.adapter.config.vision_config.patch_size == 16
    frames = np.random.default_rng(1).integers(0, 255, (4, 64, 96, 3), dtype=np.uint8)
    answer = llm.ask(frames, "what ?", max_new_tokens=2, extend="visual-yarn", visual_window=8)
    assert answer.report.scale > 1 and answer.report.family == "qwen3_vl"


@pytest.mark.parametrize("options", [dict(pooling="progressive"), dict(reduce="merge", keep=0.5),
                                     dict(extend="visual-pi", visual_window=16), dict(kv_bits=4)])  # fmt: skip
def test_pooling_reduction_and_extension_carry_deepstack_and_timestamps(tiny_models, frames_array, options):
    llm = tiny_models["qwen3_vl"]
    from longvid.extend.reduce import Reducer

    reducer = Reducer(options["reduce"], options["keep"]) if "reduce" in options else None
    visual = llm.encode_video(frames_array, 8, llm.schedule(options.get("pooling", "uniform")), reducer=reducer)
    kept = sum(d.shape[0] for d in visual.deepstack)
    grid_tokens = visual.count - sum(sum(t) for t in visual.step_text)
    assert kept == grid_tokens and len(visual.step_text) == 4  # every kept token has its DeepStack row
    answer = llm.ask(frames_array, [QUESTION, "and which came first ?"], max_new_tokens=3, **options)
    alone = [llm.ask(frames_array, q, max_new_tokens=3, **options) for q in (QUESTION, "and which came first ?")]
    assert [a.token_ids for a in answer] == [a.token_ids for a in alone]


@pytest.mark.parametrize("name", ["merge", "uniqueness"])
def test_after_reduction_kept_tokens_and_timestamps_keep_get_rope_index_positions(tiny_models, tiny_checkpoints,
                                                                                  frames_array, name):  # fmt: skip
    """A reduced group keeps its timestamp and its start/end; each kept token keeps the (t, h, w)
    transformers gives it in the unreduced prompt; the text after the video does not move."""
    from longvid.extend.reduce import Reducer

    llm = tiny_models["qwen3_vl"]
    inputs = longvid.prepare(tiny_checkpoints["qwen3_vl"], frames_array, QUESTION)
    with torch.inference_mode():
        full, _ = llm.adapter.model.model.get_rope_index(
            inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"]
        )
    reduced = llm.encode_video(frames_array, 8, reducer=Reducer(name, 0.5))
    layout = llm.layout(QUESTION, reduced, "none")
    is_video = inputs["mm_token_type_ids"][0] == 2
    keep = torch.ones(is_video.shape[0], dtype=torch.bool)
    video_at = torch.nonzero(is_video).flatten()
    per_group = len(video_at) // len(reduced.kept)
    for g, kept in enumerate(reduced.kept):  # drop the grid tokens the reducer dropped
        group = video_at[g * per_group : (g + 1) * per_group]
        dropped = sorted(set(range(per_group)) - set(kept))
        keep[group[dropped]] = False
    assert len(reduced.step_text) == 4 and layout.length == int(keep.sum())
    assert torch.equal(layout.positions, full[:, 0, keep])
