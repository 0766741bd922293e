"""Resizing and cropping decoded RGB frames the way transformers' processors do.

The official video processors resize uint8 RGB frames with bicubic interpolation *with*
antialiasing (torchvision's ``resize`` on uint8: computed in float, then rounded and clamped
back to uint8), and centre-crop with the top-left corner at ``floor((size - crop) / 2)``.
``resize_rgb`` does the same in plain torch, so longvid needs no torchvision; against
transformers' PIL image processors (PIL's fixed-point bicubic) it differs by at most one
grey level on most pixels (tests/test_real_checkpoints.py measures it).
"""

from __future__ import annotations

import numpy as np
import torch

from longvid.errors import InvalidRequestError

RESAMPLE_MODES = ("bicubic", "bilinear")


def resize_rgb(frames: np.ndarray | torch.Tensor, size: tuple[int, int], resample: str = "bicubic") -> torch.Tensor:
    """uint8 (t, H, W, 3) frames → uint8 (t, 3, h, w) for ``size`` = (w, h), antialiased
    when shrinking. Frames already of that size are returned unchanged (as the processors do)."""
    if resample not in RESAMPLE_MODES:
        raise InvalidRequestError(f"unknown resample {resample!r}; choose from {', '.join(RESAMPLE_MODES)}")
    x = torch.as_tensor(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    x = x.permute(0, 3, 1, 2)  # (t, 3, H, W)
    w, h = size
    if w < 1 or h < 1:
        raise InvalidRequestError(f"size must be positive (got {w}x{h})")
    if tuple(x.shape[-2:]) == (h, w):
        return x.contiguous()
    y = torch.nn.functional.interpolate(x.float(), size=(h, w), mode=resample, align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def center_crop(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre crop (t, 3, H, W) to ``size`` = (w, h); frames smaller than the crop are padded
    with zeros on both sides first (left/top get the smaller half), as transformers does."""
    w, h = size
    height, width = frames.shape[-2:]
    if w > width or h > height:
        pad_w, pad_h = max(0, w - width), max(0, h - height)
        frames = torch.nn.functional.pad(frames, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        height, width = frames.shape[-2:]
    top, left = (height - h) // 2, (width - w) // 2
    return frames[..., top : top + h, left : left + w]
