"""The official pixels, for checking longvid's: transformers' PIL image processors applied to
the same decoded RGB frames (they need no torchvision, unlike the video processors; for a
video the video processor runs the same resize, crop and normalisation per frame).

``compare`` reports the difference on the 0-255 scale: longvid targets a mean |Δ| ≤ 0.5 and
a 99.9th percentile ≤ 4 (PIL's fixed-point bicubic against torch's float one).
"""

from __future__ import annotations

import numpy as np
import torch

from longvid.models.families.adapter import FamilyAdapter


def official_frames(adapter: FamilyAdapter, frames: np.ndarray) -> torch.Tensor:
    """uint8 (t, H, W, 3) → normalised float32 (t, 3, h, w) by the family's PIL processor."""
    from PIL import Image

    spec = adapter.spec
    common = dict(image_mean=list(spec.mean), image_std=list(spec.std), resample=3 if spec.resample == "bicubic" else 2)
    if spec.rule == "fixed":
        from transformers import SiglipImageProcessorPil

        proc = SiglipImageProcessorPil(size={"height": spec.height, "width": spec.width}, **common)
    elif spec.rule == "shortest_edge":
        from transformers import CLIPImageProcessorPil

        crop = {"height": spec.crop_height, "width": spec.crop_width} if spec.crop_height else None
        proc = CLIPImageProcessorPil(
            size={"shortest_edge": spec.shortest_edge}, crop_size=crop, do_center_crop=crop is not None, **common
        )
    else:
        from transformers import Qwen2VLImageProcessorPil

        proc = Qwen2VLImageProcessorPil(
            min_pixels=spec.min_pixels, max_pixels=spec.max_pixels, patch_size=adapter.patch,
            merge_size=adapter.merge, temporal_patch_size=adapter.temporal, **common,
        )  # fmt: skip
    out = []
    for frame in frames:
        got = proc(images=[Image.fromarray(frame)], return_tensors="pt")
        if spec.rule == "smart":
            grid = tuple(int(v) for v in got["image_grid_thw"][0])
            out.append(unpatchify(got["pixel_values"], grid, adapter.patch, adapter.merge, adapter.temporal)[0])
        else:
            out.append(got["pixel_values"][0])
    return torch.stack(out).float()


def unpatchify(patches: torch.Tensor, grid_thw: tuple[int, int, int], patch: int, merge: int, temporal: int):
    """Qwen's (steps x rows x cols, 3 x temporal x patch x patch) patches → (t, 3, H, W)."""
    gt, gh, gw = grid_thw
    p, m, tp = patch, merge, temporal
    x = patches.view(gt, gh // m, gw // m, m, m, 3, tp, p, p)
    x = x.permute(0, 6, 5, 1, 3, 7, 2, 4, 8)  # (gt, tp, c, gh/m, m, p, gw/m, m, p)
    return x.reshape(gt * tp, 3, gh * p, gw * p)


def compare(adapter: FamilyAdapter, ours: torch.Tensor, official: torch.Tensor) -> dict[str, float]:
    """|Δ| between two normalised (t, 3, h, w) tensors, on the 0-255 scale."""
    if ours.shape != official.shape:
        return {"shape_ours": list(ours.shape), "shape_official": list(official.shape), "mean": float("inf")}
    std = torch.tensor(adapter.spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    diff = ((ours.float() - official.float()).abs() * std * 255).flatten()
    return {
        "mean": round(float(diff.mean()), 4),
        "p99_9": round(float(torch.quantile(diff[:: max(1, diff.numel() // 1_000_000)], 0.999)), 4),
        "max": round(float(diff.max()), 4),
    }
