"""Spatial pooling schedules for frame-feature grids (pure functions over tensors).

Frame features arrive as a grid (t, h, w, c) per chunk of frames. A *schedule* gives each
frame a stride; ``pool_frames`` shrinks each frame's grid by its stride with the model
family's own pooling op and returns per-frame token blocks.

- ``uniform(p)``: every frame stride p (LLaVA-OneVision's own: bilinear to ceil(h/2)).
- ``progressive(group=G, high=p_hi, low=p_lo, anchors=...)``: frames in groups of G; one
  anchor per group keeps stride p_hi, the others get p_lo. ``fixed``: the group's first
  frame. ``change``: the frame that differs most from the previous anchor (the first group
  starts from its first frame). G=4, 2/4 on a 27x27 grid keeps (196 + 3*49)/4 = 86 tokens
  per frame instead of 196.

Schedules are streaming: ``Schedule.strides(chunk, state)`` sees one chunk of frames at a
time (chunks hold whole groups); what it remembers between chunks (the last anchor's features)
lives in a ``ScheduleState`` that the caller owns (``schedule.start()``), never in the schedule:
one schedule serves any number of videos and threads at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from longvid.errors import InvalidRequestError
from longvid.extend.modes import ANCHOR_MODES, DEFAULT_ANCHORS, POOLING_MODES

POOLING_OPS = ("bilinear", "average", "max")


def pooled_side(side: int, stride: int) -> int:
    return math.ceil(side / stride)


def pool_grid(grid: torch.Tensor, stride: int, op: str) -> torch.Tensor:
    """Pool one batch of frames (t, h, w, c) by ``stride`` -> (t, ceil(h/s), ceil(w/s), c)."""
    if op not in POOLING_OPS:
        raise InvalidRequestError(f"unknown pooling op {op!r}; choose from {', '.join(POOLING_OPS)}")
    h, w = grid.shape[1:3]
    if stride < 1:
        raise InvalidRequestError(f"pooling stride must be >= 1 (got {stride})")
    if stride > min(h, w):
        raise InvalidRequestError(f"pooling stride {stride} is larger than the {h}x{w} feature grid")
    if stride == 1:
        return grid
    x = grid.permute(0, 3, 1, 2)  # (t, c, h, w)
    if op == "bilinear":
        # exactly LLaVA-OneVision's apply_pooling for stride 2 (align_corners=False)
        x = F.interpolate(x, size=(pooled_side(h, stride), pooled_side(w, stride)), mode="bilinear")
    elif op == "average":
        x = F.avg_pool2d(x, kernel_size=stride, stride=stride, ceil_mode=True)
    else:
        x = F.max_pool2d(x, kernel_size=stride, stride=stride, ceil_mode=True)
    return x.permute(0, 2, 3, 1)


def pool_frames(grid: torch.Tensor, strides: list[int], op: str) -> list[torch.Tensor]:
    """Pool each frame of (t, h, w, c) by its own stride; returns t blocks (h_i*w_i, c),
    frames of equal stride pooled together."""
    if len(strides) != grid.shape[0]:
        raise InvalidRequestError(f"{len(strides)} strides for {grid.shape[0]} frames")
    blocks: list[torch.Tensor | None] = [None] * len(strides)
    for stride in sorted(set(strides)):
        idx = [i for i, s in enumerate(strides) if s == stride]
        pooled = pool_grid(grid[idx], stride, op)
        for k, i in enumerate(idx):
            blocks[i] = pooled[k].reshape(-1, grid.shape[-1])
    return blocks  # type: ignore[return-value]


def tokens_per_frame(side_h: int, side_w: int, stride: int) -> int:
    return pooled_side(side_h, stride) * pooled_side(side_w, stride)


@dataclass
class ScheduleState:
    """What a schedule carries from one chunk of a video to the next."""

    last_anchor: torch.Tensor | None = None
    seen: int = 0


@dataclass(frozen=True)
class Schedule:
    """A pooling schedule (immutable); ``strides(chunk, state)`` is called on consecutive
    chunks of one video with that video's ``state`` (``start()``)."""

    kind: str = "uniform"  # uniform | progressive
    stride: int = 2  # uniform
    group: int = 4  # progressive
    high: int = 2
    low: int = 4
    anchors: str = DEFAULT_ANCHORS  # fixed | change

    def __post_init__(self) -> None:
        if self.kind not in POOLING_MODES:
            raise InvalidRequestError(f"unknown pooling {self.kind!r}; choose from {', '.join(POOLING_MODES)}")
        if self.anchors not in ANCHOR_MODES:
            raise InvalidRequestError(f"unknown anchors {self.anchors!r}; choose from {', '.join(ANCHOR_MODES)}")
        for name in ("stride", "group", "high", "low"):
            if getattr(self, name) < 1:
                raise InvalidRequestError(f"pooling {name} must be >= 1 (got {getattr(self, name)})")

    def describe(self) -> str:
        if self.kind == "uniform":
            return f"uniform(stride={self.stride})"
        return f"progressive(group={self.group}, high={self.high}, low={self.low}, anchors={self.anchors})"

    def start(self) -> ScheduleState:
        """The state of a new video."""
        return ScheduleState()

    @property
    def chunk_multiple(self) -> int:
        """Chunks of frames must hold whole groups."""
        return self.group if self.kind == "progressive" else 1

    def strides(self, chunk: torch.Tensor, state: ScheduleState | None = None) -> list[int]:
        """Strides for the next chunk of frame features (t, h, w, c), in frame order; ``state``
        (updated): the video's so far (None: the chunk is a whole video)."""
        state = state if state is not None else self.start()
        t = chunk.shape[0]
        if self.kind == "uniform":
            state.seen += t
            return [self.stride] * t
        if state.seen % self.group:
            raise InvalidRequestError("progressive pooling needs chunks that hold whole groups of frames")
        out: list[int] = []
        for g0 in range(0, t, self.group):
            members = chunk[g0 : g0 + self.group]
            anchor = self._pick_anchor(members, state.last_anchor)
            out.extend(self.high if k == anchor else self.low for k in range(len(members)))
            state.last_anchor = members[anchor].detach().float()
        state.seen += t
        return out

    def _pick_anchor(self, members: torch.Tensor, last_anchor: torch.Tensor | None) -> int:
        if self.anchors == "fixed" or last_anchor is None:
            return 0
        # mean squared difference of each frame's features from the last anchor's
        diff = (members.float() - last_anchor).pow(2).mean(dim=(1, 2, 3))
        return int(diff.argmax())

    def expected_tokens(self, num_frames: int, side_h: int, side_w: int) -> int:
        """Visual tokens this schedule keeps for ``num_frames`` frames (anchors by position:
        the count does not depend on which frame of a group is the anchor)."""
        if self.kind == "uniform":
            return num_frames * tokens_per_frame(side_h, side_w, self.stride)
        full, rest = divmod(num_frames, self.group)
        per_group = tokens_per_frame(side_h, side_w, self.high) + (self.group - 1) * tokens_per_frame(
            side_h, side_w, self.low
        )
        tail = 0
        if rest:
            tail = tokens_per_frame(side_h, side_w, self.high) + (rest - 1) * tokens_per_frame(side_h, side_w, self.low)
        return full * per_group + tail


def uniform(stride: int = 2) -> Schedule:
    return Schedule(kind="uniform", stride=stride)


def progressive(group: int = 4, high: int = 2, low: int = 4, anchors: str = DEFAULT_ANCHORS) -> Schedule:
    return Schedule(kind="progressive", group=group, high=high, low=low, anchors=anchors)
