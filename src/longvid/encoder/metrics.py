"""Retrieval and temporal-order metrics for the encoder (``longvid encoder eval`` builds on these)."""

from __future__ import annotations

import torch


def recall_at_k(video: torch.Tensor, text: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Text->video and video->text recall@k for paired rows (row i of each is a pair),
    from L2-normalised embeddings. A pair counts at k when fewer than k others score strictly
    higher than it (ties resolve in its favour, as the usual rank-by-argsort does not)."""
    sims = video @ text.T  # (videos, texts)
    out = {}
    for name, s in (("t2v", sims.T), ("v2t", sims)):
        right = s.diagonal()[:, None]
        rank = (s > right).sum(dim=1)  # how many beat the right answer
        for k in ks:
            out[f"{name}_r@{k}"] = float((rank < k).float().mean())
    return out


def order_accuracy(video: torch.Tensor, caption: torch.Tensor, swapped: torch.Tensor) -> float:
    """Share of videos closer to their caption than to the same caption told in reverse order."""
    return float(((video * caption).sum(-1) > (video * swapped).sum(-1)).float().mean())
