"""Qwen3-VL (``Qwen3VLForConditionalGeneration``; the MoE variant differs only in its config).

What differs from Qwen2.5-VL, each as its official processor and model do it:

- **Pixels**: patch 16, merge 2 (32 pixels a token side), temporal patch 2, mean/std 0.5. The
  video processor's ``size`` is a budget over *all* frames (``shortest_edge`` / ``longest_edge``
  pixels x frames): one size per video, from the frame count (``video_spec``), not per frame.
- **Time is text**: before each temporal group the prompt says ``<t seconds>`` (one decimal:
  the mean time of the group's two frames, from the sampled indices and the video's frame
  rate; a video given as frames without a rate is taken at 24 fps, as transformers does). The
  layout is the release processor's: the template's whole ``<|vision_start|><|video_pad|>
  <|vision_end|>`` becomes, per group, ``<t seconds><|vision_start|>`` + the group's tokens +
  ``<|vision_end|>`` (transformers 5.x keeps an outer start/end pair around them; docs/models.md
  says why longvid follows the release processor).
- **Positions**: interleaved M-RoPE, and each group is its own (1, h, w) block between text
  (``extend.positions``, ``VisualSpan.step_text``), equal to transformers' ``get_rope_index``.
- **DeepStack**: three vision layers' features are added to the first language layers' hidden
  states at the visual positions. longvid carries them as extra channels of each token
  through pooling and reduction (so a kept token keeps its own), and the prefill hands each
  chunk its rows (``generation.prefill``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from longvid.models.checkpoint.processing import PixelSpec, _resample
from longvid.models.families.adapter import PixelBatch
from longvid.models.families.qwen2_vl import Qwen2VLAdapter, qwen_text
from longvid.models.inference.budget import Geometry
from longvid.video import Frames

UNKNOWN_FPS = 24.0  # transformers' Qwen3VLProcessor when a video's rate is unknown

QWEN3_8B = Geometry(
    layers=36, hidden=4096, intermediate=12288, heads=32, kv_heads=8, head_dim=128,
    vision_hidden=1152, patches_per_frame=1024, parameters=8_770_000_000, grid_side=16, frames_per_step=2,
)  # fmt: skip


def video_size(frames: int, height: int, width: int, factor: int, min_pixels: int, max_pixels: int,
               temporal: int = 2) -> tuple[int, int]:  # fmt: skip
    """(h, w) of every frame of a ``frames``-frame video (Qwen3-VL's video ``smart_resize``:
    the pixel budget counts all frames)."""
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    t_bar = round(frames / temporal) * temporal
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (frames * height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def group_times(indices: list[int], fps: float, temporal: int = 2) -> list[float]:
    """Each temporal group's time in seconds: the mean of its first and last frame's (the
    last index repeated to fill the last group), as Qwen3VLProcessor computes it."""
    indices = list(indices)
    if len(indices) % temporal:
        indices += [indices[-1]] * (temporal - len(indices) % temporal)
    seconds = [i / fps for i in indices]
    return [(seconds[i] + seconds[i + temporal - 1]) / 2 for i in range(0, len(seconds), temporal)]


class Qwen3VLAdapter(Qwen2VLAdapter):
    model_types = ("qwen3_vl", "qwen3_vl_moe")
    model_classes: ClassVar[dict[str, str]] = {
        "qwen3_vl": "Qwen3VLForConditionalGeneration",
        "qwen3_vl_moe": "Qwen3VLMoeForConditionalGeneration",
    }
    reference_7b: ClassVar[dict[str, Geometry]] = {"qwen3_vl": QWEN3_8B}

    def pixel_spec(self) -> PixelSpec:
        """Per frame, before the frame count is known: the budget as if for one frame pair."""
        size = self.preprocess.get("size") or {}
        lo = int(size.get("shortest_edge") or self.preprocess.get("min_pixels") or 128 * 32 * 32)
        hi = int(size.get("longest_edge") or self.preprocess.get("max_pixels") or 768 * 32 * 32)
        mean = tuple(self.preprocess.get("image_mean", (0.5, 0.5, 0.5)))
        std = tuple(self.preprocess.get("image_std", (0.5, 0.5, 0.5)))
        factor = self.patch * self.merge
        return PixelSpec("smart", factor=factor, min_pixels=lo // 2, max_pixels=hi // 2,
                         resample=_resample(self.preprocess), mean=mean, std=std)  # fmt: skip

    def video_spec(self, frames: int, width: int, height: int) -> PixelSpec:
        """Every frame of this video at the one size the budget over all frames gives."""
        size = self.preprocess.get("size") or {}
        lo = int(size.get("shortest_edge") or 128 * 32 * 32)
        hi = int(size.get("longest_edge") or 768 * 32 * 32)
        h, w = video_size(frames, height, width, self.spec.factor, lo, hi, self.temporal)
        return PixelSpec("fixed", height=h, width=w, factor=self.spec.factor, max_pixels=h * w,
                         resample=self.spec.resample, mean=self.spec.mean, std=self.spec.std)  # fmt: skip

    # ---- time as text

    def step_text(self, frames: Frames) -> list[tuple[list[int], list[int]]]:
        """Per temporal group, the text ids before its tokens (``<t seconds>`` and
        ``<|vision_start|>``) and after them (``<|vision_end|>``)."""
        fps = float(frames.info.fps) if frames.info is not None and frames.info.fps else UNKNOWN_FPS
        start = self.tokenizer.convert_tokens_to_ids("<|vision_start|>")
        end = self.tokenizer.convert_tokens_to_ids("<|vision_end|>")
        out = []
        for t in group_times([int(i) for i in frames.indices], fps, self.temporal):
            stamp = self.tokenizer(f"<{t:.1f} seconds>", add_special_tokens=False)["input_ids"]
            out.append(([*stamp, start], [end]))
        return out

    def prompt_ids(self, question: str, history: tuple[tuple[str, str], ...] = ()) -> tuple[list[int], list[int]]:
        """The template's ``<|vision_start|>`` and ``<|vision_end|>`` around the video go: each
        group brings its own (the release processor's layout)."""
        before, after = super().prompt_ids(question, history)
        start = self.tokenizer.convert_tokens_to_ids("<|vision_start|>")
        end = self.tokenizer.convert_tokens_to_ids("<|vision_end|>")
        if before and before[-1] == start:
            before = before[:-1]
        if after and after[0] == end:
            after = after[1:]
        return before, after

    def video_prompt_ids(self, before: list[int], after: list[int], frames: Frames, tokens_per_step: int) -> list[int]:
        video_id = self.tokenizer.convert_tokens_to_ids(self.video_token)
        ids = list(before)
        for pre, post in self.step_text(frames):
            ids += [*pre, *([video_id] * tokens_per_step), *post]
        return ids + list(after)

    def native_tokens_per_frame(self, grid_h: int, grid_w: int) -> float:
        """Per frame: its share of the group's tokens and of the group's text (a nominal
        ``<0.0 seconds>`` and the start/end pair): what W_v counts."""
        stamp = len(self.tokenizer("<0.0 seconds>", add_special_tokens=False)["input_ids"]) + 2
        return (grid_h * grid_w + stamp) / self.frames_per_step

    # ---- the tower, with DeepStack

    def encode(self, batch: PixelBatch) -> torch.Tensor:
        """(steps, h, w, d x (1 + deepstack layers)): the merged tokens, then each DeepStack
        layer's features of the same token as extra channels (pooled and kept with it)."""
        gt, gh, gw = batch.grid_thw
        grid = torch.tensor([batch.grid_thw], device=batch.values.device)
        out = self.model.model.visual(batch.values, grid_thw=grid)
        merged = torch.cat([out.pooler_output, *out.deepstack_features], dim=-1)
        return merged.view(gt, gh // self.merge, gw // self.merge, -1)

    def split_visual(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled tokens (n, d x (1 + L)) → the embeddings (n, d) and DeepStack rows (n, L, d)."""
        d = self.text_config.hidden_size
        return tokens[:, :d], tokens[:, d:].reshape(tokens.shape[0], -1, d)

    # ---- tiny checkpoints

    tiny_special_tokens = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

    @classmethod
    def tiny_config(cls, model_type: str, ids: dict[str, int], text: dict, vision: dict):
        import transformers

        vision_config = dict(
            depth=3, hidden_size=vision["hidden"], intermediate_size=2 * vision["hidden"], num_heads=2,
            patch_size=vision["patch"], spatial_merge_size=2, temporal_patch_size=2,
            out_hidden_size=text["hidden_size"], num_position_embeddings=64, deepstack_visual_indexes=[0, 1],
        )  # fmt: skip
        head_dim = text["hidden_size"] // text["num_attention_heads"]
        half = head_dim // 2
        section = [half - 2 * (half // 3), half // 3, half // 3]
        rope = {**text["rope_parameters"], "mrope_section": section, "mrope_interleaved": True}
        text = {**text, "head_dim": head_dim, "rope_parameters": rope}
        kwargs = qwen_text(ids, text, vision_config)
        kwargs["text_config"]["rope_parameters"] = rope
        if model_type == "qwen3_vl_moe":  # the same model with a mixture of experts in its MLPs
            moe = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=text["hidden_size"])
            kwargs["text_config"].update(moe, decoder_sparse_step=1)
            return transformers.Qwen3VLMoeConfig(**kwargs)
        return transformers.Qwen3VLConfig(**kwargs)

    @classmethod
    def shrink_vision(cls, config, vision_hidden: int, hidden: int) -> None:
        vc = config.vision_config
        vc.depth, vc.num_heads = 3, 2
        vc.hidden_size, vc.intermediate_size, vc.out_hidden_size = vision_hidden, 2 * vision_hidden, hidden
        vc.deepstack_visual_indexes = [0, 1]

    @classmethod
    def tiny_preprocess(cls, side: int, patch: int) -> dict:
        return {
            "size": {"shortest_edge": 2 * side * side, "longest_edge": 64 * side * side},
            "patch_size": patch,
            "merge_size": 2,
            "temporal_patch_size": 2,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
        }
