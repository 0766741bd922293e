"""INTP token rearrangement: feed a fixed-frame encoder a video longer than it was built for.

An encoder that mixes exactly N frames (temporal embeddings for N positions) cannot take
T > N frames. INTP splits the video into m = ceil(T / N) subsequences, encodes each with
the frozen encoder, and puts every frame's output back in absolute frame order:

- ``interleave`` (INTP): subsequence j holds frames j, j+m, j+2m, ... — each one spans the
  whole video at m times the stride;
- ``chunks``: consecutive blocks 0..N-1, N..2N-1, ... (the comparison the source never ran).

When T is not a multiple of N some subsequences are one frame short; they are padded by
repeating their last frame, and the padding's outputs are dropped on the way back. Encoders
that see each frame on its own (every transformers video LLM port here) produce identical
features under either split: the gain there can only come from the language side.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from longvid.errors import InvalidRequestError
from longvid.extend.modes import REARRANGE_MODES


def split_frames(num_frames: int, group: int, mode: str = "interleave") -> list[np.ndarray]:
    """Frame indices of each subsequence, every one exactly ``group`` long (padded)."""
    if mode not in REARRANGE_MODES:
        raise InvalidRequestError(f"unknown rearrangement {mode!r}; choose from {', '.join(REARRANGE_MODES)}")
    if group < 1 or num_frames < 1:
        raise InvalidRequestError(f"need frames >= 1 and group >= 1 (got {num_frames}, {group})")
    if mode == "none":
        return [np.arange(num_frames)]
    m = math.ceil(num_frames / group)
    if mode == "interleave":
        parts = [np.arange(j, num_frames, m) for j in range(m)]
    else:
        parts = [np.arange(k * group, min(num_frames, (k + 1) * group)) for k in range(m)]
    return [np.concatenate([p, np.repeat(p[-1:], group - len(p))]) if len(p) < group else p for p in parts]


def restore_order(outputs: list[torch.Tensor], parts: list[np.ndarray], num_frames: int) -> torch.Tensor:
    """Per-frame outputs (one tensor (group, ...) per subsequence) back in frame order;
    padding repeats are dropped (the first output of each frame wins)."""
    out: list[torch.Tensor | None] = [None] * num_frames
    for part, result in zip(parts, outputs, strict=True):
        for k, frame in enumerate(part.tolist()):
            if out[frame] is None:
                out[frame] = result[k]
    missing = [i for i, o in enumerate(out) if o is None]
    if missing:
        raise InvalidRequestError(f"frames {missing[:5]} were in no subsequence")
    return torch.stack(out)  # type: ignore[arg-type]


def encode_rearranged(
    frames: torch.Tensor, group: int, encode: Callable[[torch.Tensor], torch.Tensor], mode: str = "interleave"
) -> torch.Tensor:
    """Encode (T, ...) frames with an N-frame ``encode`` ((N, ...) → (N, ...) per frame) and
    return per-frame outputs (T, ...) in frame order."""
    parts = split_frames(frames.shape[0], group, mode)
    if mode == "none":
        return encode(frames)
    return restore_order([encode(frames[torch.as_tensor(p)]) for p in parts], parts, frames.shape[0])
