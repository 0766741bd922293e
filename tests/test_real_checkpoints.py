"""The five released checkpoints' own files (config, tokenizer, processor config, chat
template; no weights), against transformers' official pieces.

For every family x a landscape and a portrait video of odd size x an even and an odd frame
count: ``longvid.prepare`` gives the token ids the processor writes (the template rendered
by transformers, the whole prompt tokenized with its special tokens, the video token
repeated by the processor's own count), pixels within the target of transformers' PIL image
processors on the same decoded frames, Qwen's grids exactly and Qwen2.5-VL's seconds per
step as ``VideoMetadata.sampled_fps`` gives them. On random-weight models built from each
real config (layers and widths shrunk, geometry kept), ``model(**prepare(...))`` gives
longvid's logits, and ``ask`` runs.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import longvid
from longvid.models import from_model
from longvid.models.checkpoint.files import read_checkpoint
from longvid.models.checkpoint.reference import compare, official_frames, unpatchify
from longvid.models.checkpoint.registry import adapter_class
from longvid.models.checkpoint.tiny import from_real_config
from longvid.models.families import FAMILIES
from longvid.video import probe, sample_frames

QUESTION = "What happens in this video?"
# the families whose official processors' rules this file writes out; Qwen3-VL's (time as text,
# a budget over all frames) are in tests/test_qwen3_vl.py
FAMILIES = [f for f in FAMILIES if not f.startswith("qwen3")]
DOCUMENTED_VIDEO_LLAVA = "USER: <video>\n{question} ASSISTANT:"


@pytest.fixture(scope="module")
def adapters(hub_dirs):
    out = {}
    for family in FAMILIES:
        files = read_checkpoint(hub_dirs[family])
        out[family] = adapter_class(family)(files)
    return out


@pytest.fixture(scope="module")
def llms(hub_dirs):
    """Random-weight models built from the real configs, with the real files."""
    out = {}
    for family in FAMILIES:
        files = read_checkpoint(hub_dirs[family])
        out[family] = from_model(from_real_config(files.config), files)
    return out


def official_video_tokens(family: str, frames: int, ref: torch.Tensor, grid_thw=None) -> int:
    """The processor's own count (processing_<family>.py), from the official pixels."""
    h, w = ref.shape[-2:]
    if family == "llava_onevision":  # 27x27 patches pooled to ceil(27/2)^2, + the newline
        side = math.ceil(h // 14 / 2)
        return frames * side * side + 1
    if family == "llava_next_video":  # patches // 4 per frame
        return frames * ((h // 14) * (w // 14) // 4)
    if family == "video_llava":  # patches + CLS per frame
        return frames * ((h // 14) * (w // 14) + 1)
    gt, gh, gw = grid_thw
    return gt * gh * gw // 4


def official_ids(hub_dir, tokenizer, family: str, video_token: str, count: int) -> list[int]:
    """The processor's text: its template rendered by transformers (Video-LLaVA ships none:
    its documented prompt), the video token repeated, tokenized whole."""
    template_file = hub_dir / "chat_template.json"
    if template_file.exists():
        template = json.loads(template_file.read_text())["chat_template"]
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}]
        text = tokenizer.apply_chat_template(
            messages, chat_template=template, add_generation_prompt=True, tokenize=False
        )
    else:
        text = DOCUMENTED_VIDEO_LLAVA.format(question=QUESTION)
    assert text.count(video_token) == 1
    return tokenizer(text.replace(video_token, video_token * count))["input_ids"]


@pytest.mark.parametrize("frames", [4, 5])
@pytest.mark.parametrize("shape", ["landscape", "portrait"])
@pytest.mark.parametrize("family", FAMILIES)
def test_prepare_equals_the_official_processor(adapters, hub_dirs, odd_videos, family, shape, frames):
    ad = adapters[family]
    video = odd_videos[shape]
    inputs = longvid.prepare(ad, video, QUESTION, frames=frames)
    decoded = sample_frames(video, frames).array  # the same frames, at their own size
    ref = official_frames(ad, decoded)
    if family.startswith("qwen"):
        grid = tuple(int(v) for v in inputs["video_grid_thw"][0])
        h, w = ref.shape[-2:]
        assert grid == (math.ceil(frames / 2), h // 14, w // 14)
        ours = unpatchify(inputs["pixel_values_videos"], grid, 14, 2, 2)
        assert torch.equal(ours[frames:], ours[frames - 1 : frames].expand(len(ours) - frames, -1, -1, -1))
        ours = ours[:frames]  # an odd count repeats the last frame, as the processor does
    else:
        grid = None
        ours = inputs["pixel_values_videos"][0]
        assert inputs["pixel_values_videos"].shape == (1, frames, *ref.shape[1:])
    stats = compare(ad, ours, ref)
    assert stats["mean"] <= 0.5 and stats["p99_9"] <= 4, stats
    count = official_video_tokens(family, frames, ref, grid)
    want = official_ids(hub_dirs[family], ad.tokenizer, family, ad.video_token, count)
    assert inputs["input_ids"][0].tolist() == want
    assert torch.equal(inputs["attention_mask"], torch.ones_like(inputs["input_ids"]))
    if family.startswith("llava_next") or family == "video_llava":
        assert want[0] == ad.tokenizer.bos_token_id == 1  # the Llama tokenizer's BOS, as the processor adds it
    if family == "qwen2_5_vl":
        info = probe(video)
        official = 2 / (frames / info.frame_count * float(info.fps))  # temporal patch / VideoMetadata.sampled_fps
        assert float(inputs["second_per_grid_ts"][0]) == pytest.approx(official, rel=1e-6)


def test_prompts_render_the_checkpoints_templates(adapters):
    """The {% generation %} templates render (they crashed a plain jinja2 renderer)."""
    ov = adapters["llava_onevision"].prompt_text("Q?")
    assert ov == "<|im_start|>user <video>\nQ?<|im_end|><|im_start|>assistant\n"
    nv = adapters["llava_next_video"].prompt_text("Q?")
    assert nv == "USER: <video>\nQ? ASSISTANT:"
    assert adapters["video_llava"].prompt_text("Q?") == nv
    before, after = adapters["llava_next_video"].prompt_ids("Hello world")
    assert before == [1, 3148, 1001, 29901, 29871] and after[0] == 13  # no stray "▁" after the video


@pytest.mark.parametrize("family", FAMILIES)
def test_transformers_on_prepare_equals_longvid(llms, odd_videos, family):
    """The shrunk random model from the real config: transformers' forward on ``prepare``'s
    inputs gives longvid's last logits (no extension, the family's own pooling); Qwen's text
    after the video sits where longvid puts it, so its positions are passed."""
    llm = llms[family]
    video = odd_videos["portrait"]
    inputs = longvid.prepare(llm.adapter, video, QUESTION, frames=5)
    visual = llm.encode_video(video, frames=5)
    layout = llm.layout(QUESTION, visual)
    positions = layout.positions
    ours, _ = llm.prefill(layout)
    assert layout.length == inputs["input_ids"].shape[1]
    kwargs = {}
    if llm.adapter.position_layout == "mrope":
        kwargs["position_ids"] = positions[:, None, :]
        end = layout.spans[0].length + layout.spans[1].length
        types = inputs["mm_token_type_ids"]
        extra = {k: inputs[k] for k in ("second_per_grid_ts",) if k in inputs}
        ref, _ = llm.adapter.model.model.get_rope_index(
            inputs["input_ids"], types, video_grid_thw=inputs["video_grid_thw"], **extra
        )
        assert torch.equal(positions[:, :end], ref[:, 0, :end])  # the video's ids, time included
    with torch.inference_mode():
        theirs = llm.adapter.model(**inputs, **kwargs, logits_to_keep=1).logits[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_ask_runs_on_each_real_config(llms, odd_videos, family):
    answer = llms[family].ask(odd_videos["landscape"], QUESTION, frames=4, max_new_tokens=2)
    r = answer.report
    assert r.frames == 4 and r.generated_tokens == len(answer.token_ids) <= 2
    tok = llms[family].adapter.tokenizer
    assert answer.text == tok.decode(answer.token_ids, skip_special_tokens=True).strip()
    assert (
        r.prompt_tokens
        == longvid.prepare(llms[family].adapter, odd_videos["landscape"], QUESTION, frames=4)["input_ids"].shape[1]
    )


def test_qwen25_time_follows_the_video(llms):
    """Temporal ids are spaced tokens_per_second x 2 / sampled fps: 37.5 for 64 frames over
    600 s, 1.875 over 30 s (not a constant 2)."""
    ad = llms["qwen2_5_vl"].adapter
    assert ad.seconds_per_step(64, 600.0) * 2 == pytest.approx(37.5)
    assert ad.seconds_per_step(64, 30.0) * 2 == pytest.approx(1.875)
    assert ad.step_positions(4, 64, 600.0) == (0.0, 37.0, 75.0, 112.0)


def test_cli_inspect_and_prepare_on_a_real_checkpoint(hub_dirs, odd_videos, tmp_path, capsys):
    from safetensors.torch import load_file

    from longvid.cli import main

    assert main(["inspect", "--model", str(hub_dirs["llava_next_video"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "llava_next_video" and report["weights_present"] is False
    assert report["frame_size_fed"] == [336, 336] and report["tokens_per_frame"] == 144
    assert (
        report["visual_window"] == 32 * 144
        and report["prompt"] == "USER: <video>\nWhat happens in this video? ASSISTANT:"
    )
    assert report["pixels_vs_official"]["mean"] <= 0.5 and report["pixels_vs_official"]["p99_9"] <= 4
    out = tmp_path / "inputs.safetensors"
    video = odd_videos["portrait"]
    assert (
        main(
            [
                "prepare",
                str(video),
                QUESTION,
                "--model",
                str(hub_dirs["qwen2_5_vl"]),
                "--frames",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    saved = load_file(str(out))
    want = longvid.prepare(hub_dirs["qwen2_5_vl"], video, QUESTION, frames=5)
    assert set(saved) == set(want) >= {"input_ids", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts"}
    assert all(torch.equal(saved[k], want[k]) for k in want)


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_resize_feeds_the_same_shapes_and_tokens(adapters, llms, odd_videos, family):
    """The decoder's resize lands on the size the exact path resizes to (every rule is
    idempotent), so only pixel values differ; frames given as an array are resized either way."""
    ad = adapters[family]
    video = odd_videos["landscape"]
    exact = longvid.prepare(ad, video, QUESTION, frames=4)
    fast = longvid.prepare(ad, video, QUESTION, frames=4, fast_resize=True)
    assert torch.equal(fast["input_ids"], exact["input_ids"])
    assert fast["pixel_values_videos"].shape == exact["pixel_values_videos"].shape
    assert not torch.equal(fast["pixel_values_videos"], exact["pixel_values_videos"])
    for w, h in [(333, 187), (187, 333)]:
        assert ad.spec.resized_size(*ad.spec.resized_size(w, h)) == ad.spec.resized_size(w, h)
    frames = sample_frames(video, 4).array
    answer = llms[family].ask(frames, QUESTION, max_new_tokens=1, fast_resize=True)
    assert answer.report.prompt_tokens == exact["input_ids"].shape[1]
