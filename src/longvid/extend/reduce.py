"""Content-aware visual token reduction (pure functions over pooled frame features).

Each reducer sees one chunk of frames as a grid (t, h, w, c) (after the family's own
pooling) and returns, per frame, the flat indices (into h*w, ascending) of the tokens kept.
The budget is exact and does not depend on how frames are chunked: every frame is worth
``tokens_per_frame(keep, h, w)`` tokens, and a chunk of t frames keeps t times that, spread
over its frames by content. Streaming: the state a reducer needs from earlier chunks (the last
frame, the running frame mean) is passed in and returned.

- ``uniqueness`` (after VidCom², arXiv 2505.14454): a frame's budget grows with how
  distinct it is from the video so far (1 - cosine between its mean feature and the running
  mean of all frames, standardised within the chunk, softmax-weighted); inside a frame, the
  tokens least like the frame's mean are kept (they carry what the frame adds).
- ``merge`` (after DyCoke, arXiv 2411.15024, and FastVID's temporal redundancy): a token
  nearly identical (cosine) to the token at the same place in the previous frame repeats it;
  across the chunk, the least repeated tokens are kept. The video's first frame has nothing to
  repeat and keeps the most.

What positions the kept tokens get is the layout's (``extend.positions``): M-RoPE keeps each
token's (t, h, w); 1-D layouts number the kept tokens consecutively, or, with
``Reducer(positions="original")``, keep the places they had before reduction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from longvid.errors import InvalidRequestError
from longvid.extend.modes import REDUCE_MODES
from longvid.extend.positions import KEPT_POSITIONS

REDUCERS = tuple(m for m in REDUCE_MODES if m != "none")
UNIQUENESS_TEMPERATURE = 1.0  # softmax temperature over frame distinctiveness (in standard deviations)


def tokens_per_frame(keep: float, h: int, w: int) -> int:
    """The average tokens a frame keeps: ``keep`` of its h*w, at least one."""
    return max(1, min(h * w, round(keep * h * w)))


@dataclass
class ReduceState:
    """What a reducer carries from one chunk to the next."""

    last_frame: torch.Tensor | None = None  # (h, w, c) features of the previous frame
    mean_sum: torch.Tensor | None = None  # sum of frame mean features so far
    frames_seen: int = 0
    extra: dict = field(default_factory=dict)


def _split_budget(weights: torch.Tensor, total: int, cap: int) -> list[int]:
    """Integers proportional to ``weights`` (each in [1, cap]) that sum to ``total``."""
    n = len(weights)
    total = max(n, min(total, n * cap))
    share = weights / weights.sum() * total
    budget = share.floor().clamp(1, cap).long()
    # hand out what is left by largest remainder, then take back any excess the same way
    order = torch.argsort(share - share.floor(), descending=True).tolist()
    i = 0
    while int(budget.sum()) < total:
        k = order[i % n]
        if budget[k] < cap:
            budget[k] += 1
        i += 1
    i = 0
    while int(budget.sum()) > total:
        k = order[::-1][i % n]
        if budget[k] > 1:
            budget[k] -= 1
        i += 1
    return budget.tolist()


def uniqueness(grid: torch.Tensor, keep: float, state: ReduceState) -> list[torch.Tensor]:
    """Per-frame budgets by distinctiveness from the video so far; the least typical tokens."""
    t, h, w, c = grid.shape
    x = grid.float().reshape(t, h * w, c)
    means = x.mean(dim=1)  # (t, c)
    running = state.mean_sum if state.mean_sum is not None else torch.zeros(c)
    seen = state.frames_seen
    distinct = []
    for f in range(t):
        reference = (running + means[: f + 1].sum(0)) / (seen + f + 1)
        distinct.append(1 - F.cosine_similarity(means[f], reference, dim=0))
    distinct = torch.stack(distinct)
    # distinctiveness relative to the chunk's own spread (frames of one video differ by little
    # in absolute cosine terms), then softmax-weighted
    z = (distinct - distinct.mean()) / (distinct.std() + 1e-6) if t > 1 else torch.zeros(1)
    weights = torch.softmax(z / UNIQUENESS_TEMPERATURE, dim=0)
    budgets = _split_budget(weights, t * tokens_per_frame(keep, h, w), h * w)
    state.mean_sum = running + means.sum(0)
    state.frames_seen = seen + t
    kept = []
    for f in range(t):
        atypical = 1 - F.cosine_similarity(x[f], means[f][None], dim=-1)  # (h*w,)
        kept.append(torch.sort(torch.topk(atypical, budgets[f]).indices).values)
    return kept


def merge(grid: torch.Tensor, keep: float, state: ReduceState) -> list[torch.Tensor]:
    """Drop the tokens that repeat the same place of the previous frame, most repeated first."""
    t, h, w, c = grid.shape
    x = grid.float().reshape(t, h * w, c)
    if state.last_frame is None:  # the video's first frame repeats nothing
        first = torch.full((1, h * w), -math.inf)
        similarity = torch.cat([first, F.cosine_similarity(x[1:], x[:-1], dim=-1)]) if t > 1 else first
    else:
        previous = torch.cat([state.last_frame.float().reshape(1, h * w, c), x[:-1]])
        similarity = F.cosine_similarity(x, previous, dim=-1)  # (t, h*w)
    state.last_frame = grid[-1].detach()
    total = t * tokens_per_frame(keep, h, w)
    chosen = torch.zeros(t, h * w, dtype=torch.bool)
    chosen[torch.arange(t), similarity.argmin(dim=1)] = True  # no frame vanishes: its least repeated token
    rest = similarity.masked_fill(chosen, math.inf).reshape(-1)
    chosen.view(-1)[torch.argsort(rest, stable=True)[: total - t]] = True
    return [torch.nonzero(chosen[f]).flatten() for f in range(t)]


@dataclass(frozen=True)
class Reducer:
    """A reducer by name with its keep ratio (immutable: what it carries across the chunks of
    one video is a ``ReduceState`` the caller owns, ``start()``)."""

    name: str
    keep: float
    positions: str = "compact"  # 1-D layouts: "compact" renumbers kept tokens, "original" keeps gaps

    def __post_init__(self) -> None:
        if self.name not in REDUCERS:
            raise InvalidRequestError(f"unknown reducer {self.name!r}; choose from {', '.join(REDUCERS)}")
        if not 0 < self.keep <= 1:
            raise InvalidRequestError(f"keep must be in (0, 1] (got {self.keep})")
        if self.positions not in KEPT_POSITIONS:
            raise InvalidRequestError(
                f"unknown kept-token positions {self.positions!r}; choose from {', '.join(KEPT_POSITIONS)}"
            )

    def start(self) -> ReduceState:
        """The state of a new video."""
        return ReduceState()

    def kept(self, grid: torch.Tensor, state: ReduceState | None = None) -> list[torch.Tensor]:
        """Kept flat indices per frame of the next chunk ``grid`` (t, h, w, c); ``state``
        (updated): the video's so far (None: the chunk is a whole video)."""
        return REDUCER_FUNCTIONS[self.name](grid, self.keep, state if state is not None else self.start())

    def expected_tokens(self, steps: int, h: int, w: int) -> int:
        return steps * tokens_per_frame(self.keep, h, w)

    def describe(self) -> str:
        gaps = ", original positions" if self.positions == "original" else ""
        return f"{self.name}(keep={self.keep:g}{gaps})"


REDUCER_FUNCTIONS = {"uniqueness": uniqueness, "merge": merge}
