"""Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``): Qwen2-VL's processing, a windowed
vision tower, and absolute time in M-RoPE.

The temporal position of step t is ``floor(t x tokens_per_second x seconds per step)``,
computed in float32 as transformers' ``get_rope_index`` does. Seconds per step is
``temporal_patch_size`` / the sampled rate, and the sampled rate is what transformers'
``VideoMetadata.sampled_fps`` says: frames sampled / the video's duration (frame count /
frame rate). 64 frames of a 600 s video: 18.75 s a step, temporal ids 37.5 apart; of a 30 s
video: 0.94 s, 1.875 apart. ``longvid.prepare`` returns it as ``second_per_grid_ts``.
Frames given as an array carry no time: 2 fps is assumed, the processor's default.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from longvid.models.families.adapter import PixelBatch
from longvid.models.families.qwen2_vl import QWEN_7B, Qwen2VLAdapter, qwen_text
from longvid.models.inference.budget import Geometry

ASSUMED_FPS = 2.0  # the Qwen2.5-VL processor's default when a video's rate is unknown


class Qwen25VLAdapter(Qwen2VLAdapter):
    model_types = ("qwen2_5_vl",)
    model_classes: ClassVar[dict[str, str]] = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}
    reference_7b: ClassVar[dict[str, Geometry]] = {"qwen2_5_vl": QWEN_7B}

    def seconds_per_step(self, frames: int, duration: float | None) -> float:
        """``temporal_patch_size`` / (``frames`` sampled over ``duration`` seconds)."""
        if not duration or duration <= 0 or frames < 1:
            return self.temporal / ASSUMED_FPS
        return self.temporal * duration / frames

    def step_positions(self, steps: int, frames: int, duration: float | None) -> tuple[float, ...]:
        tokens_per_second = self.config.vision_config.tokens_per_second
        interval = tokens_per_second * torch.tensor(self.seconds_per_step(frames, duration), dtype=torch.float32)
        return tuple(float(v) for v in (torch.arange(steps) * interval).long())

    def official_inputs(self, batch: PixelBatch, duration: float | None = None) -> dict[str, torch.Tensor]:
        seconds = torch.tensor([self.seconds_per_step(batch.frames, duration)], dtype=torch.float32)
        return {**super().official_inputs(batch), "second_per_grid_ts": seconds}

    @classmethod
    def shrink_vision(cls, config, vision_hidden: int, hidden: int) -> None:
        vc = config.vision_config  # hidden_size wide, the merger out to out_hidden_size
        vc.depth, vc.num_heads = 2, 2
        vc.hidden_size, vc.intermediate_size, vc.out_hidden_size = vision_hidden, 2 * vision_hidden, hidden
        vc.fullatt_block_indexes = [1]

    @classmethod
    def tiny_config(cls, model_type: str, ids: dict[str, int], text: dict, vision: dict):
        import transformers

        vision_config = dict(
            depth=2, hidden_size=vision["hidden"], out_hidden_size=text["hidden_size"],
            intermediate_size=2 * vision["hidden"], num_heads=2, patch_size=vision["patch"], spatial_merge_size=2,
            temporal_patch_size=2, window_size=4 * vision["patch"], fullatt_block_indexes=[1], tokens_per_second=2,
        )  # fmt: skip
        return transformers.Qwen2_5_VLConfig(**qwen_text(ids, text, vision_config))
