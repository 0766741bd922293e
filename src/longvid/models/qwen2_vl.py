"""Qwen2-VL and Qwen2.5-VL (``Qwen2VLForConditionalGeneration``,
``Qwen2_5_VLForConditionalGeneration``).

Frames are resized to multiples of patch x merge (28) within the checkpoint's pixel budget,
normalised, and cut into 14x14 patches two frames deep (``temporal_patch_size``), laid out
exactly as the family's video processor does; the vision tower attends within each
temporal step, so chunks of whole steps encode exactly as the full video does. The merger
gives an (h/2) x (w/2) grid per step. Positions are M-RoPE (temporal, height, width):
longvid computes them itself (``longvid.extend.positions.mrope_positions``), with text after
the video starting one past its largest position.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from longvid.extend.pooling import Schedule, uniform
from longvid.models.base import FamilyAdapter
from longvid.models.prompt import split_prompt

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(H, W) divisible by ``factor``, aspect kept, pixel count within [min, max] (the
    family's own rule)."""
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return max(h_bar, factor), max(w_bar, factor)


class Qwen2VLAdapter(FamilyAdapter):
    model_types = ("qwen2_vl", "qwen2_5_vl")
    pooling_op = "average"
    frames_per_step = 2
    position_layout = "mrope"
    # Qwen2-VL's video training used up to 768 frames at 2 fps with a token budget; longvid
    # takes 64 frames x its per-step tokens as W_v, and --visual-window overrides it.
    trained_frames = 64
    video_placeholder = "<|video_pad|>"

    def __init__(self, model, tokenizer, preprocess: dict, name: str) -> None:
        super().__init__(model, tokenizer, preprocess, name)
        vc = self.config.vision_config
        self.patch = int(preprocess.get("patch_size", vc.patch_size))
        self.merge = int(preprocess.get("merge_size", vc.spatial_merge_size))
        self.temporal = int(preprocess.get("temporal_patch_size", vc.temporal_patch_size))
        size = preprocess.get("size") or {}
        self.min_pixels = int(preprocess.get("min_pixels") or size.get("shortest_edge") or 128 * 28 * 28)
        self.max_pixels = int(preprocess.get("max_pixels") or size.get("longest_edge") or 768 * 28 * 28)
        self._mean = torch.tensor(preprocess.get("image_mean", CLIP_MEAN)).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess.get("image_std", CLIP_STD)).view(1, 3, 1, 1)
        self.seconds_per_frame = 0.5  # set per request from the sampled timestamps
        self._grid_thw: torch.Tensor | None = None

    def default_pooling(self) -> Schedule:
        return uniform(1)  # the merger already pooled 2x2

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        h, w = smart_resize(height, width, self.patch * self.merge, self.min_pixels, self.max_pixels)
        return w, h

    def pixels(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)  # (t, 3, H, W)
        x = (x - self._mean) / self._std
        if pad := -x.shape[0] % self.temporal:  # odd frame count: repeat the last, as the processor does
            x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
        t, c, height, width = x.shape
        p, m, tp = self.patch, self.merge, self.temporal
        gt, gh, gw = t // tp, height // p, width // p
        # (gt, tp, c, gh/m, m, p, gw/m, m, p) -> (gt, gh/m, gw/m, m, m, c, tp, p, p)
        x = x.view(gt, tp, c, gh // m, m, p, gw // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        self._grid_thw = torch.tensor([[gt, gh, gw]], device=self.device)
        return x.reshape(gt * gh * gw, c * tp * p * p).to(device=self.device, dtype=self.dtype)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        gt, gh, gw = (int(v) for v in self._grid_thw[0])
        merged = self.model.model.visual(pixels, grid_thw=self._grid_thw).pooler_output  # (gt*gh*gw/m^2, d)
        return merged.view(gt, gh // self.merge, gw // self.merge, -1)

    def native_grid(self) -> tuple[int, int]:
        side = max(1, int(math.sqrt(self.max_pixels)) // (self.patch * self.merge))
        return side, side

    def time_interval(self) -> float:
        # Qwen2.5-VL spaces temporal ids by tokens_per_second x seconds per step
        tokens_per_second = getattr(self.config.vision_config, "tokens_per_second", None)
        if self.config.model_type != "qwen2_5_vl" or not tokens_per_second:
            return 1.0
        return tokens_per_second * self.temporal * self.seconds_per_frame

    def prompt_ids(self, question: str) -> tuple[list[int], list[int]]:
        video_text = f"<|vision_start|>{self.video_placeholder}<|vision_end|>"
        before, after = split_prompt(self.tokenizer, question, video_text, self.chat_template)
        start = self.tokenizer("<|vision_start|>", add_special_tokens=False)["input_ids"]
        end = self.tokenizer("<|vision_end|>", add_special_tokens=False)["input_ids"]
        return before + start, end + after
