"""Pieces image towers bring to VideoViT: their activations and SigLIP's attention-pooling head."""

from __future__ import annotations

import torch
from torch import nn


class QuickGELU(nn.Module):
    """CLIP's x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "quick_gelu": QuickGELU}


class AttentionPoolHead(nn.Module):
    """Pooling by a learned query attending over all tokens, then a residual MLP (SigLIP's
    multi-head attention pooling head)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, act: str, eps: float) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm = nn.LayerNorm(width, eps=eps)
        hidden = round(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), ACTIVATIONS[act](), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attention(self.probe.expand(x.shape[0], -1, -1), x, x, need_weights=False)[0]
        return (out + self.mlp(self.norm(out)))[:, 0]
