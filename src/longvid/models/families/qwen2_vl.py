"""Qwen2-VL (``Qwen2VLForConditionalGeneration``); Qwen2.5-VL builds on it (qwen2_5_vl.py).

Preprocessing as its video processor: each frame resized to the nearest size whose sides are
multiples of patch x merge (28) with its pixel count within the checkpoint's
[``min_pixels``, ``max_pixels``], bicubic with antialiasing, CLIP's mean/std, then cut into
14x14 patches two frames deep (``temporal_patch_size``; an odd frame count repeats the last
frame) in the processor's exact order. The vision tower attends within each temporal step,
so chunks of whole steps encode exactly as the full video does; the merger gives an
(h/2) x (w/2) grid per step. Positions are M-RoPE (temporal, height, width): longvid
computes them itself (``longvid.extend.positions.mrope_positions``); the video's equal
transformers' ``get_rope_index``, and text after the video starts one past its largest
position (docs/models.md says why).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from longvid.models.checkpoint.processing import CLIP_MEAN, CLIP_STD, PixelSpec, smart_spec
from longvid.models.families.adapter import FamilyAdapter, PixelBatch
from longvid.models.inference.budget import Geometry

# Qwen2-7B + 675M ViT; a 448x448 frame pair -> 16x16 merged tokens per 2 frames
QWEN_7B = Geometry(
    layers=28, hidden=3584, intermediate=18944, heads=28, kv_heads=4, head_dim=128,
    vision_hidden=1280, patches_per_frame=512, parameters=8_290_000_000, grid_side=16, frames_per_step=2,
)  # fmt: skip


class Qwen2VLAdapter(FamilyAdapter):
    model_types = ("qwen2_vl",)
    tiny_special_tokens = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    model_classes: ClassVar[dict[str, str]] = {"qwen2_vl": "Qwen2VLForConditionalGeneration"}
    pooling_op = "average"
    frames_per_step = 2
    position_layout = "mrope"
    # Qwen2-VL's video training used up to 768 frames at 2 fps with a token budget; longvid
    # takes 64 frames x its per-step tokens as W_v, and --visual-window overrides it.
    trained_frames = 64
    video_token = "<|video_pad|>"
    video_markup = "<|vision_start|><|video_pad|><|vision_end|>"
    reference_7b: ClassVar[dict[str, Geometry]] = {"qwen2_vl": QWEN_7B}

    @property
    def patch(self) -> int:
        return int(self.preprocess.get("patch_size") or self.config.vision_config.patch_size)

    @property
    def merge(self) -> int:
        return int(self.preprocess.get("merge_size") or self.config.vision_config.spatial_merge_size)

    @property
    def temporal(self) -> int:
        return int(self.preprocess.get("temporal_patch_size") or self.config.vision_config.temporal_patch_size)

    def pixel_spec(self) -> PixelSpec:
        return smart_spec(self.preprocess, self.patch * self.merge)

    def native_grid(self, width: int | None = None, height: int | None = None) -> tuple[int, int]:
        if width is None or height is None:  # the largest square the pixel budget allows
            side = max(1, math.isqrt(self.spec.max_pixels) // self.spec.factor)
            return side, side
        w, h = self.spec.output_size(width, height)
        return h // self.spec.factor, w // self.spec.factor

    def patches_per_frame(self, grid_h: int, grid_w: int) -> int:
        return grid_h * grid_w * self.merge**2 * self.temporal // self.frames_per_step

    def layout(self, values: torch.Tensor) -> PixelBatch:
        """(t, 3, H, W) → (steps x rows x cols, 3 x temporal x patch x patch) patches."""
        frames = values.shape[0]
        if pad := -frames % self.temporal:  # odd frame count: repeat the last, as the processor does
            values = torch.cat([values, values[-1:].expand(pad, -1, -1, -1)])
        t, c, height, width = values.shape
        p, m, tp = self.patch, self.merge, self.temporal
        gt, gh, gw = t // tp, height // p, width // p
        # (gt, tp, c, gh/m, m, p, gw/m, m, p) -> (gt, gh/m, gw/m, m, m, c, tp, p, p)
        x = values.view(gt, tp, c, gh // m, m, p, gw // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return PixelBatch(x.reshape(gt * gh * gw, c * tp * p * p), frames, (gt, gh, gw))

    def official_inputs(self, batch: PixelBatch, duration: float | None = None) -> dict[str, torch.Tensor]:
        return {"pixel_values_videos": batch.values, "video_grid_thw": torch.tensor([batch.grid_thw])}

    def text_inputs(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        # the processor's token types: 1 for image tokens, 2 for video tokens
        video_id = self.tokenizer.convert_tokens_to_ids(self.video_token)
        return {"mm_token_type_ids": (input_ids == video_id).long() * 2}

    def encode(self, batch: PixelBatch) -> torch.Tensor:
        gt, gh, gw = batch.grid_thw
        grid = torch.tensor([batch.grid_thw], device=batch.values.device)
        merged = self.model.model.visual(batch.values, grid_thw=grid).pooler_output  # (gt*gh*gw/m^2, d)
        return merged.view(gt, gh // self.merge, gw // self.merge, -1)

    @classmethod
    def tiny_config(cls, model_type: str, ids: dict[str, int], text: dict, vision: dict):
        import transformers

        vision_config = dict(
            depth=2, embed_dim=vision["hidden"], hidden_size=text["hidden_size"], num_heads=2, mlp_ratio=2,
            patch_size=vision["patch"], spatial_merge_size=2, temporal_patch_size=2,
        )  # fmt: skip
        return transformers.Qwen2VLConfig(**qwen_text(ids, text, vision_config))

    @classmethod
    def shrink_vision(cls, config, vision_hidden: int, hidden: int) -> None:
        vc = config.vision_config  # embed_dim wide, the merger out to hidden_size
        vc.depth, vc.num_heads = 2, 2
        vc.embed_dim, vc.hidden_size = vision_hidden, hidden

    @classmethod
    def tiny_preprocess(cls, side: int, patch: int) -> dict:
        return {
            "patch_size": patch,
            "merge_size": 2,
            "temporal_patch_size": 2,
            "min_pixels": side * side,
            "max_pixels": side * side,
            "image_mean": list(CLIP_MEAN),
            "image_std": list(CLIP_STD),
        }


def qwen_text(ids: dict[str, int], text: dict, vision_config: dict) -> dict:
    """The text half of a tiny Qwen-VL config: M-RoPE sections that fill head_dim / 2."""
    half = text["hidden_size"] // text["num_attention_heads"] // 2
    section = [half - 2 * (half // 3), half // 3, half // 3]  # t, h, w
    rope = {**text["rope_parameters"], "mrope_section": section}
    return dict(
        text_config={**text, "rope_parameters": rope, "eos_token_id": ids["<|im_end|>"], "bos_token_id": None},
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
