"""Sparse multi-kernel video tubes (after TubeViT, "Rethinking Video ViTs: Sparse Video Tubes
for Joint Image and Video Learning", arXiv 2212.03229): instead of one dense grid of tubelets,
a few kernels of different shapes, each strided past its own size, so together they see the
whole clip with far fewer tokens: fine tubes on every fourth step, long coarse tubes over
four steps, and wide flat tubes in between. Positions are fixed 3-D sine-cosine codes of each
tube's centre (no table to interpolate: any frame count works).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def tube_kernels(
    tubelet: int, patch: int
) -> list[tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]]:
    """(kernel, stride, offset) in (frames, pixels, pixels) for the three tube shapes."""
    return [
        ((tubelet, patch, patch), (4 * tubelet, patch, patch), (0, 0, 0)),  # fine, sparse in time
        ((4 * tubelet, 2 * patch, 2 * patch), (4 * tubelet, 2 * patch, 2 * patch), (0, 0, 0)),  # long, coarse
        ((tubelet, 2 * patch, 2 * patch), (4 * tubelet, 2 * patch, 2 * patch), (2 * tubelet, 0, 0)),  # between
    ]


def sincos_3d(centres: torch.Tensor, width: int) -> torch.Tensor:
    """(n, width) codes of (t, y, x) centres: a third of the channels per axis."""
    per_axis = (width // 6) * 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(per_axis // 2, dtype=torch.float32) / (per_axis // 2))
    parts = []
    for axis in range(3):
        angle = centres[:, axis : axis + 1].float() * freqs[None]
        parts += [angle.sin(), angle.cos()]
    code = torch.cat(parts, dim=1)
    return nn.functional.pad(code, (0, width - code.shape[1]))


class SparseTubes(nn.Module):
    """Video (b, frames, 3, H, W) -> tube tokens (b, n, width) with their positions."""

    def __init__(self, width: int, tubelet: int, patch: int) -> None:
        super().__init__()
        self.specs = tube_kernels(tubelet, patch)
        self.kernels = nn.ModuleList(nn.Conv3d(3, width, kernel_size=k, stride=s) for k, s, _ in self.specs)
        self.width = width

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = video.transpose(1, 2)  # (b, 3, frames, H, W)
        tokens = []
        for conv, (kernel, stride, offset) in zip(self.kernels, self.specs, strict=True):
            part = x[:, :, offset[0] :, offset[1] :, offset[2] :]
            if any(part.shape[2 + i] < kernel[i] for i in range(3)):
                continue  # a clip too short for this tube shape
            y = conv(part)  # (b, width, t', h', w')
            t, h, w = y.shape[2:]
            grid = torch.stack(torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"), -1)
            centres = grid.reshape(-1, 3) * torch.tensor(stride) + torch.tensor(offset) + torch.tensor(kernel) / 2
            tokens.append(y.flatten(2).transpose(1, 2) + sincos_3d(centres, self.width).to(y.dtype).to(y.device))
        return torch.cat(tokens, dim=1)
