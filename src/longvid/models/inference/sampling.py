"""Which frames, and at what size: a frame count, or qwen-vl-utils' fps and pixel budgets.

By default a request samples ``frames`` uniformly (as many as the checkpoint was trained
with) and each family resizes them by its processor's own rule. A Qwen user samples the way
qwen-vl-utils does instead, with its names and semantics:

- ``fps`` (default 2), ``min_frames`` (4), ``max_frames`` (768): frames = duration x fps,
  clamped to [min_frames, max_frames] and to the frames the video has, rounded down to the
  temporal patch (2: ``smart_nframes``), spread over the whole video
  (``linspace(0, count - 1, n).round()``);
- ``min_pixels`` (128 x 28 x 28), ``max_pixels`` (768 x 28 x 28), ``total_pixels``
  (128,000 x 28 x 28 x 0.9): each frame's pixel cap is ``max(min(max_pixels, total_pixels /
  frames x 2), 1.05 x min_pixels)``, and ``smart_resize`` picks its size (sides multiples of
  28, aspect kept, pixels within [min_pixels, cap]).

A 30-minute 720p video at the defaults: 768 frames at 336x644, 105,984 tokens. Any of these
options selects this path; ``frames`` and ``fps`` together are refused. The pixel options
apply to the families that resize by Qwen's rule; ``fps`` to every family (its frames rounded
down to the family's frames per step).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from longvid.errors import InvalidRequestError
from longvid.models.checkpoint.processing import smart_resize
from longvid.models.families.adapter import FamilyAdapter
from longvid.models.inference.request import AskOptions
from longvid.video import Frames, probe

# qwen-vl-utils' defaults (vision_process.py), in its units: pixels are tokens x factor^2, the
# factor being patch x merge (28 for Qwen2-VL / 2.5-VL, 32 for Qwen3-VL / Qwen3.5)
FPS = 2.0
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
MIN_TOKENS, MAX_TOKENS, TOTAL_TOKENS = 128, 768, 128_000 * 0.9
VIDEO_MIN_PIXELS = MIN_TOKENS * 28 * 28
VIDEO_MAX_PIXELS = MAX_TOKENS * 28 * 28
VIDEO_TOTAL_PIXELS = int(TOTAL_TOKENS * 28 * 28)


def round_by(x: float, k: int) -> int:
    return round(x / k) * k


def ceil_by(x: float, k: int) -> int:
    return math.ceil(x / k) * k


def floor_by(x: float, k: int) -> int:
    return math.floor(x / k) * k


def smart_nframes(total_frames: int, video_fps: float, fps: float = FPS, min_frames: int = FPS_MIN_FRAMES,
                  max_frames: int | None = None, factor: int = 2) -> int:  # fmt: skip
    """qwen-vl-utils' frame count for a video of ``total_frames`` at ``video_fps``."""
    lo = ceil_by(min_frames, factor)
    hi = floor_by(max_frames if max_frames is not None else min(FPS_MAX_FRAMES, total_frames), factor)
    n = total_frames / video_fps * fps
    n = floor_by(min(min(max(n, lo), hi), total_frames), factor)
    if not factor <= n <= total_frames:
        raise InvalidRequestError(
            f"fps {fps:g} gives {n} frames of a {total_frames}-frame video: needs between {factor} and {total_frames}"
        )
    return n


def frame_cap(frames: int, min_pixels: int, max_pixels: int, total_pixels: int, factor: int = 2) -> int:
    """Each frame's pixel cap under a budget over all frames (qwen-vl-utils' ``fetch_video``)."""
    return int(max(min(max_pixels, total_pixels / frames * factor), int(min_pixels * 1.05)))


@dataclass(frozen=True)
class SamplingPlan:
    """What a request samples: ``frames`` (None: all frames given), and for a pixel budget
    the size every frame is resized to (``size`` (w, h)) with the adapter that does it."""

    frames: int | None
    adapter: FamilyAdapter
    size: tuple[int, int] | None = None
    note: str = ""


def uses_budgets(o: AskOptions) -> bool:
    return any(v is not None for v in (o.fps, o.min_frames, o.max_frames, o.min_pixels, o.max_pixels, o.total_pixels))


def plan_sampling(adapter: FamilyAdapter, source, options: AskOptions) -> SamplingPlan:
    """The frame count and, under a pixel budget, the frame size of ``source`` (a Path or
    ``Frames``: ``encoding.as_source``), from its header alone."""
    o = options
    given = isinstance(source, Frames)
    if given and o.frames is not None and o.frames != len(source):
        raise InvalidRequestError(f"{len(source)} frames were given and all are used: frames={o.frames} does not apply")
    if not uses_budgets(o):
        frames = o.frames or (len(source) if given else adapter.default_frames())
        if type(adapter).video_spec is FamilyAdapter.video_spec:
            return SamplingPlan(frames, adapter)
        # a family whose frame size depends on the frame count (Qwen3-VL's budget over all frames)
        if given:
            width, height = int(source.array.shape[2]), int(source.array.shape[1])
        else:
            info = probe(source)
            width, height, frames = info.width, info.height, min(frames, info.frame_count)
        view = adapter.with_spec(adapter.video_spec(frames, width, height))
        return SamplingPlan(frames, view, (view.spec.width, view.spec.height))
    pixels = (o.min_pixels, o.max_pixels, o.total_pixels)
    if any(v is not None for v in pixels) and adapter.spec.rule != "smart":
        raise InvalidRequestError(
            f"min_pixels / max_pixels / total_pixels apply to Qwen's resize rule; {adapter.config.model_type} "
            f"resizes by its own ({adapter.spec.rule})"
        )
    step = adapter.frames_per_step
    if given:
        if o.fps is not None or o.min_frames is not None or o.max_frames is not None:
            raise InvalidRequestError("fps, min_frames and max_frames need a video file (frames given have no time)")
        frames, width, height = len(source), int(source.array.shape[2]), int(source.array.shape[1])
        note = f"{frames} frames given"
    else:
        info = probe(source)
        width, height = info.width, info.height
        if o.frames is not None:
            frames, note = o.frames, f"{o.frames} frames"
        else:
            fps = o.fps if o.fps is not None else FPS
            frames = smart_nframes(info.frame_count, float(info.fps), fps, o.min_frames or FPS_MIN_FRAMES,
                                   o.max_frames, factor=step)  # fmt: skip
            note = f"fps {fps:g} -> {frames} frames of {info.frame_count}"
    if adapter.spec.rule != "smart":
        return SamplingPlan(frames, adapter, None, note)
    factor = adapter.spec.factor
    area = factor * factor
    lo = o.min_pixels if o.min_pixels is not None else MIN_TOKENS * area
    total = o.total_pixels if o.total_pixels is not None else int(TOTAL_TOKENS * area)
    cap = frame_cap(frames, lo, MAX_TOKENS * area, total, step)
    if o.max_pixels is not None:  # a user's cap lowers the budget's, never raises it
        cap = min(o.max_pixels, cap)
    h, w = smart_resize(height, width, factor, lo, cap)
    # the checkpoint's own rule keeps this size (sides multiples of the factor, pixels within it)
    view = adapter.with_spec(dataclasses.replace(adapter.spec, min_pixels=min(lo, w * h), max_pixels=max(cap, w * h)))
    return SamplingPlan(frames, view, (w, h), f"{note}, {w}x{h} a frame (cap {cap:,} pixels, total {total:,})")
