"""The learning-rate schedule every longvid trainer uses (encoder, captioner, testbed)."""

from __future__ import annotations

import math


def warmup_cosine(
    step: int, *, peak: float, total: int, warmup: int, floor: float = 0.0, decay: str = "cosine"
) -> float:
    """Linear warm-up over ``warmup`` steps to ``peak``, then a cosine from ``peak`` down to
    ``floor`` at step ``total`` (``decay="constant"``: stay at ``peak``)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if decay == "constant":
        return peak
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
