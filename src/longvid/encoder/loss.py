"""Symmetric InfoNCE with a learnable temperature, features gathered across DDP ranks with
gradients in both directions (as open_clip's ClipLoss with ``gather_with_grad`` and
``local_loss``): each rank scores its own rows against every rank's columns, and the backward
pass sums what every rank's loss sends to a rank's features. With DDP averaging the parameter
gradients, training on W ranks then follows the full batch's gradient exactly
(tests/test_encoder.py compares on two gloo ranks). A gather that detaches the other ranks'
rows gives each rank only its own loss's share: half the gradient is lost on two ranks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = 100.0


class ContrastiveLoss(nn.Module):
    """Video-text InfoNCE; ``logit_scale`` = log(1 / temperature), init temperature 0.07,
    the scale capped at 100."""

    def __init__(self, init_temperature: float = 0.07) -> None:
        super().__init__()
        # shape (1,), not a scalar: FSDP cannot shard 0-d parameters
        self.logit_scale = nn.Parameter(torch.full((1,), math.log(1 / init_temperature)))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)[0]

    def forward(
        self,
        video: torch.Tensor,
        text: torch.Tensor,
        negatives: torch.Tensor | None = None,
        negatives_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``video``, ``text``: (b, d) L2-normalised, row i of each a pair. ``negatives``:
        (b, d) extra texts that match no video (e.g. each caption with its events in reverse
        order: hard negatives, as NegCLIP adds), used in the video->text term;
        ``negatives_valid`` (b,) bool masks rows that have none."""
        all_video, all_text, offset = gather_with_grad(video), gather_with_grad(text), _rank_offset(video.shape[0])
        logits_v = self.scale() * video @ all_text.T  # this rank's videos against every text
        if negatives is not None:
            extra = self.scale() * video @ gather_with_grad(negatives).T
            if negatives_valid is not None:
                valid = gather_with_grad(negatives_valid.float()) > 0.5
                extra = extra.masked_fill(~valid[None], float("-inf"))
            logits_v = torch.cat([logits_v, extra], dim=1)
        logits_t = self.scale() * text @ all_video.T
        labels = torch.arange(video.shape[0], device=video.device) + offset
        return (F.cross_entropy(logits_v, labels) + F.cross_entropy(logits_t, labels)) / 2


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _rank_offset(batch: int) -> int:
    dist = _dist()
    return 0 if dist is None else dist.get_rank() * batch


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums every rank's gradient of the gathered rows and hands
    each rank its own slice (written out rather than ``torch.distributed.nn.all_gather``, whose
    backward needs reduce_scatter, which gloo lacks)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        dist = _dist()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        dist = _dist()
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows in rank order, differentiable with respect to every rank's rows."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)
