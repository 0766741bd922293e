"""Which frames to decode, and in what order: request kinds → frame indices, keyframe
snapping for the fast path, and the decode plan (seek or decode forward, whichever costs
less)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from longvid.errors import FrameRangeError, FrameRangeWarning, InvalidRequestError
from longvid.video.container import FrameIndex

# A seek (flush, demuxer jump, decoder restart) costs about as much as decoding this many
# frames at 360p; measured with bench/sampling.py. Only matters where plans are close.
SEEK_COST_FRAMES = 6


def uniform_indices(count: int, n: int) -> np.ndarray:
    """``n`` indices spread over ``count`` frames, first to last (``linspace(...).round()``)."""
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    return np.linspace(0, count - 1, n).round().astype(np.int64)


def select_indices(
    index: FrameIndex,
    path: str | Path,
    *,
    n: int | None = None,
    indices: Sequence[int] | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    timestamps: Sequence[float] | None = None,
    strict: bool = False,
) -> np.ndarray:
    """Frame indices for exactly one of the request kinds (in request order)."""
    given = [k for k, v in {"n": n, "indices": indices, "fps": fps, "timestamps": timestamps}.items() if v is not None]
    if len(given) != 1:
        raise InvalidRequestError(f"give exactly one of n, indices, fps, timestamps (got {given or 'none'})")
    count = len(index)

    if n is not None:
        if n < 1:
            raise InvalidRequestError(f"number of frames must be >= 1 (got {n})")
        if n > count:
            _too_many(path, f"{n} frames requested but the video has {count}", strict)
            n = count
        return uniform_indices(count, n)

    if indices is not None:
        listed = list(indices)
        bad = [i for i in listed if not -(2**62) < int(i) < 2**62]
        if bad:
            raise FrameRangeError(path, f"frame index {bad[0]} out of range (video has {count} frames)")
        out = np.asarray(listed, dtype=np.int64)
        if out.size == 0:
            raise InvalidRequestError("no frame indices given")
        bad = out[(out < 0) | (out >= count)]
        if bad.size:
            raise FrameRangeError(
                path, f"frame index {int(bad[0])} out of range (video has {count} frames: 0..{count - 1})"
            )
        return out

    if fps is not None:
        if not (math.isfinite(fps) and fps > 0):
            raise InvalidRequestError(f"fps must be a positive number (got {fps})")
        if fps * index.duration >= count:  # at or above the video's own rate: every frame
            out = np.arange(count, dtype=np.int64)
        else:
            times = np.arange(0.0, index.duration - 1e-9, 1.0 / fps)
            out = np.unique(index.frame_at(times))
        if max_frames is not None:
            if max_frames < 1:
                raise InvalidRequestError(f"max_frames must be >= 1 (got {max_frames})")
            if len(out) > max_frames:
                out = out[uniform_indices(len(out), max_frames)]
        return out

    times = np.asarray(list(timestamps), dtype=np.float64)
    if times.size == 0:
        raise InvalidRequestError("no timestamps given")
    if not np.isfinite(times).all():
        raise InvalidRequestError("timestamps must be numbers of seconds (got nan or inf)")
    if (times < 0).any():
        raise InvalidRequestError(f"timestamps must be >= 0 (got {times.min()})")
    late = times[times >= index.duration]
    if late.size:
        _too_many(path, f"timestamp {late.max():.3f}s is past the end ({index.duration:.3f}s)", strict)
    return index.frame_at(np.minimum(times, index.duration))


def _too_many(path, message: str, strict: bool) -> None:
    if strict:
        raise FrameRangeError(path, message)
    warnings.warn(f"{path}: {message}; clamped to the video", FrameRangeWarning, stacklevel=4)


def snap_to_keyframes(index: FrameIndex, targets: np.ndarray, tolerance: float | None) -> np.ndarray:
    """Move each target to its nearest keyframe when one is within ``tolerance`` seconds
    (default: half the median gap between targets, so neighbours stay apart)."""
    if len(index.keyframes) == 0:
        return targets
    if tolerance is None:
        gaps = np.diff(index.times(np.unique(targets)))
        tolerance = float(np.median(gaps)) / 2 if gaps.size else index.duration
    before = index.keyframe_before(targets)
    after = index.keyframe_after(targets)
    t = index.times(targets)
    d_before = np.where(before >= 0, t - index.times(np.maximum(before, 0)), np.inf)
    d_after = np.where(after >= 0, index.times(np.maximum(after, 0)) - t, np.inf)
    nearest = np.where(d_before <= d_after, before, after)
    ok = np.minimum(d_before, d_after) <= tolerance + 1e-9
    return np.where(ok, nearest, targets)


@dataclass
class Segment:
    """Decode forward from ``start`` (a keyframe index, or -1 for the file's beginning)
    through every target in ``targets`` (sorted)."""

    start: int
    targets: list[int]


def plan_segments(index: FrameIndex, targets: np.ndarray, seek_cost: int = SEEK_COST_FRAMES) -> list[Segment]:
    """Greedy plan over sorted unique targets: continue forward or seek, whichever costs less."""
    keys = index.keyframe_before(targets)
    segments: list[Segment] = []
    pos = None
    for t, k in zip(targets.tolist(), keys.tolist(), strict=True):
        if pos is not None and (t - pos) <= (t - max(k, 0)) + seek_cost:
            segments[-1].targets.append(t)
        else:
            segments.append(Segment(start=k, targets=[t]))
        pos = t
    return segments


def minimum_decodes(index: FrameIndex, targets: np.ndarray) -> int:
    """Frames any exact method must decode: from each target's keyframe through the last
    target sharing that keyframe."""
    targets = np.unique(targets)
    keys = np.maximum(index.keyframe_before(targets), 0)
    total = 0
    for k in np.unique(keys):
        total += int(targets[keys == k].max() - k + 1)
    return total
