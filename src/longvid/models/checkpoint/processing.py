"""What a family's official processor does to a frame, as data: ``PixelSpec``.

Three resize rules cover the five families:

- ``fixed``: to ``height`` x ``width`` whatever the aspect (LLaVA-OneVision's video processor);
- ``shortest_edge``: the shorter side to ``shortest_edge``, the longer side
  ``int(shortest_edge * long / short)``, then a centre crop (LLaVA-NeXT-Video, Video-LLaVA);
- ``smart``: the nearest size whose sides are multiples of ``factor`` with the pixel count
  kept within [``min_pixels``, ``max_pixels``] (Qwen2-VL, Qwen2.5-VL).

Then bicubic with antialiasing on RGB, rescale to [0, 1], normalise with the checkpoint's
mean and std. Frames that already have the resized size (the decoder resized them, longvid's
``fast_resize``: swscale, area filter, in YUV) are only cropped: faster on large videos, and
measurably different (docs/models.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from longvid.errors import InvalidRequestError
from longvid.video.resize import center_crop, resize_rgb

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)
RESIZE_RULES = ("fixed", "shortest_edge", "smart")
# transformers' PILImageResampling codes the processor configs store
RESAMPLE_CODES = {2: "bilinear", 3: "bicubic"}


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(H, W) divisible by ``factor``, aspect kept, pixel count within [min, max] (Qwen's rule)."""
    if max(height, width) / min(height, width) > 200:
        raise InvalidRequestError(f"aspect ratio {max(height, width) / min(height, width):.0f}:1 is over Qwen's 200:1")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return max(h_bar, factor), max(w_bar, factor)


@dataclass(frozen=True)
class PixelSpec:
    """One family's frame preprocessing, read from the checkpoint's processor config."""

    rule: str
    height: int = 0  # fixed
    width: int = 0
    shortest_edge: int = 0  # shortest_edge (+ crop)
    crop_height: int = 0
    crop_width: int = 0
    factor: int = 0  # smart
    min_pixels: int = 0
    max_pixels: int = 0
    resample: str = "bicubic"
    mean: tuple[float, float, float] = HALF
    std: tuple[float, float, float] = HALF

    def __post_init__(self) -> None:
        if self.rule not in RESIZE_RULES:
            raise InvalidRequestError(f"unknown resize rule {self.rule!r}; choose from {', '.join(RESIZE_RULES)}")

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(w, h) a (width x height) frame is resized to, before any crop."""
        if self.rule == "fixed":
            return self.width, self.height
        if self.rule == "shortest_edge":
            short, long = min(width, height), max(width, height)
            new_long = int(self.shortest_edge * long / short)
            return (self.shortest_edge, new_long) if width <= height else (new_long, self.shortest_edge)
        h, w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return w, h

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(w, h) of the tensor the vision tower gets."""
        if self.crop_width and self.crop_height:
            return self.crop_width, self.crop_height
        return self.resized_size(width, height)

    def uint8(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (t, H, W, 3) → uint8 (t, 3, h, w): resized (a no-op when they already have
        the resized size, every rule being idempotent) and cropped."""
        _, height, width, _ = frames.shape
        x = resize_rgb(frames, self.resized_size(width, height), self.resample)
        if self.crop_width and self.crop_height:
            x = center_crop(x, (self.crop_width, self.crop_height))
        return x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (t, 3, h, w) → float32, rescaled to [0, 1] and normalised."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x.float().div_(255) - mean) / std

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (0, None)}


def _stats(preprocess: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(preprocess.get("image_mean", CLIP_MEAN)), tuple(preprocess.get("image_std", CLIP_STD))


def _resample(preprocess: dict) -> str:
    return RESAMPLE_CODES.get(int(preprocess.get("resample", 3)), "bicubic")


def fixed_spec(preprocess: dict, default_side: int) -> PixelSpec:
    """``size: {height, width}`` (or a shortest edge read as a square), no crop."""
    size = preprocess.get("size") or {}
    h = int(size.get("height") or size.get("shortest_edge") or default_side)
    w = int(size.get("width") or size.get("shortest_edge") or default_side)
    mean, std = _stats(preprocess)
    return PixelSpec("fixed", height=h, width=w, resample=_resample(preprocess), mean=mean, std=std)


def shortest_edge_spec(preprocess: dict, default_side: int) -> PixelSpec:
    """``size: {shortest_edge}`` then ``crop_size`` (CLIP's rule)."""
    size = preprocess.get("size") or {}
    crop = preprocess.get("crop_size") or {}
    if "height" in size and "shortest_edge" not in size:
        return fixed_spec(preprocess, default_side)
    edge = int(size.get("shortest_edge") or default_side)
    mean, std = _stats(preprocess)
    do_crop = preprocess.get("do_center_crop", True)
    return PixelSpec(
        "shortest_edge",
        shortest_edge=edge,
        crop_height=int(crop.get("height") or edge) if do_crop else 0,
        crop_width=int(crop.get("width") or edge) if do_crop else 0,
        resample=_resample(preprocess),
        mean=mean,
        std=std,
    )


def smart_spec(preprocess: dict, factor: int) -> PixelSpec:
    """Qwen's ``min_pixels`` / ``max_pixels`` (or ``size: {shortest_edge, longest_edge}``);
    the video processor's own defaults when the config has neither."""
    size = preprocess.get("size") or {}
    lo = int(preprocess.get("min_pixels") or size.get("shortest_edge") or 128 * 28 * 28)
    hi = int(preprocess.get("max_pixels") or size.get("longest_edge") or 768 * 28 * 28)
    mean, std = _stats(preprocess)
    return PixelSpec(
        "smart", factor=factor, min_pixels=lo, max_pixels=hi, resample=_resample(preprocess), mean=mean, std=std
    )
