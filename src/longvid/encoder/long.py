"""Long inputs for a fixed-frame encoder (seed 002): a VideoViT trained at N frames applied to
T = m * N frames three ways.

- ``interleave`` (INTP): m subsequences j, j+m, j+2m, ... each encoded alone, each spanning
  the whole video at m times the stride;
- ``chunks``: m consecutive blocks of N frames, each encoded alone;
- ``interpolate``: all T frames at once, temporal position embeddings interpolated.

Either split goes through ``longvid.extend.rearrange`` (the function the inference side
uses): per-frame features come back in frame order, and the clip embedding is their mean
through the head, exactly as the encoder pools N frames. At m = 1 all three are the plain
forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from longvid.encoder.model import VideoViT
from longvid.errors import InvalidRequestError
from longvid.extend.rearrange import encode_rearranged

LONG_MODES = ("interleave", "chunks", "interpolate")


def per_frame_features(model: VideoViT, frames: torch.Tensor) -> torch.Tensor:
    """(T, width) for one clip's (T, 3, H, W) frames: each tubelet step's mean token, given to
    each of its frames."""
    tokens, steps = model.patch_tokens(frames[None])
    per_step = tokens[0].view(steps, -1, tokens.shape[-1]).mean(dim=1)
    return per_step.repeat_interleave(model.config.tubelet, dim=0)


@torch.no_grad()
def long_video_embedding(model: VideoViT, frames: torch.Tensor, group: int, mode: str = "interleave") -> torch.Tensor:
    """L2-normalised embedding (embed_dim,) of (T, 3, H, W) frames for an encoder built for
    ``group`` frames."""
    if mode not in LONG_MODES:
        raise InvalidRequestError(f"unknown long-input mode {mode!r}; choose from {', '.join(LONG_MODES)}")
    if model.config.backbone == "frame" and model.config.pooling == "attention":
        raise InvalidRequestError("long-input modes need a mean-pooled encoder (joint, factorized, frame/mean)")
    if mode == "interpolate":
        features = per_frame_features(model, frames)
    else:
        features = encode_rearranged(frames, group, lambda part: per_frame_features(model, part), mode)
    return F.normalize(model.head(features.mean(dim=0)), dim=-1)
