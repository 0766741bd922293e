"""Position ids for sequences of text and visual spans (pure functions, no model classes).

A prompt is a list of spans: ``TextSpan(n)`` and ``VisualSpan(grids, ...)``; a visual span is
a video as its temporal steps, each an (h, w) grid of tokens (pooling may make the grids
differ; a reducer may keep some of a grid's tokens, ``kept``), plus ``extra`` trailing tokens
(LLaVA-OneVision's newline). Tokens a reducer dropped take no position: in 1-D layouts the
kept tokens are numbered consecutively (``kept_positions="compact"``, the default) or keep the
positions they had before reduction, leaving gaps (``"original"``: the video spans as many
positions as unreduced, ``VisualSpan.extent``); under M-RoPE each keeps its own (t, h, w).

- ``positions_1d``: one position per token. Standard: 0, 1, 2, ... With ``visual_scale`` s
  (``visual-pi``), each visual token advances 1/s, so a video of N tokens occupies N/s
  positions; text resumes one step after the video's last position.
- ``mrope_positions``: Qwen2-VL / Qwen2.5-VL's (3, L) ids (temporal, height, width). Text has
  all three equal; a video token at step t, row i, column j of its grid gets
  (p + τ_t/s, p + i', p + j'), where τ_t is the step's temporal position (t, or Qwen2.5-VL's
  floor(t·interval) from real time, ``VisualSpan.step_positions``) and i', j' are the
  row/column in the unpooled grid's units (a stride-2 grid's rows sit at 0.5, 2.5, ...), so
  every frame covers the same area.
  Text after a video starts at the video's largest position + 1. (transformers 5.23 restarts
  it at p + max(h, w), which overlaps the temporal positions of long videos, and its
  generate() then continues from max + 1, so its prefill and decode disagree.)

Decoding continues from ``next_position`` in both layouts, so prefill-then-decode and one
long prefill give the same positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TextSpan:
    length: int

    @property
    def extent(self) -> int:
        return self.length


@dataclass(frozen=True)
class VisualSpan:
    """A video's tokens: per temporal step an (h, w) grid and the pooling stride that made
    it (1 = unpooled), then ``extra`` tokens that belong to no grid cell."""

    grids: tuple[tuple[int, int], ...]
    strides: tuple[float, ...] | None = None
    extra: int = 0
    step_extra: int = 0  # tokens before each step's grid (1-D layouts only)
    step_positions: tuple[float, ...] | None = None  # M-RoPE temporal position of each step (default t)
    # tokens a reducer kept of each step's grid (flat indices, ascending); None: all of them
    kept: tuple[tuple[int, ...], ...] | None = None
    # 1-D layouts: "compact" numbers kept tokens consecutively, "original" keeps their places
    kept_positions: str = "compact"
    # per step, text tokens before and after its grid (Qwen3-VL's timestamps and start/end):
    # M-RoPE then places each step as its own (1, h, w) block between text
    step_text: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.kept_positions not in KEPT_POSITIONS:
            raise ValueError(f"kept_positions must be one of {', '.join(KEPT_POSITIONS)}")

    def step_tokens(self, t: int) -> int:
        h, w = self.grids[t]
        text = sum(self.step_text[t]) if self.step_text is not None else 0
        return (h * w if self.kept is None else len(self.kept[t])) + self.step_extra + text

    def visual_mask(self) -> torch.Tensor:
        """(length,) bool: True at the grid tokens, False at per-step text and extra tokens."""
        parts = []
        for t, (h, w) in enumerate(self.grids):
            pre, post = self.step_text[t] if self.step_text is not None else (0, 0)
            n = h * w if self.kept is None else len(self.kept[t])
            parts += [torch.zeros(pre + self.step_extra, dtype=torch.bool), torch.ones(n, dtype=torch.bool),
                      torch.zeros(post, dtype=torch.bool)]  # fmt: skip
        parts.append(torch.zeros(self.extra, dtype=torch.bool))
        return torch.cat(parts)

    def step_ids(self) -> torch.Tensor:
        """(length,) int64: the temporal step each token belongs to (its grid, and its per-step
        text or extra rows: Qwen3-VL's timestamps, Video-LLaVA's CLS), -1 at the trailing extra."""
        counts = [self.step_tokens(t) for t in range(len(self.grids))]
        steps = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.int64))
        return torch.cat([steps, torch.full((self.extra,), -1, dtype=torch.int64)])

    @property
    def length(self) -> int:
        return sum(self.step_tokens(t) for t in range(len(self.grids))) + self.extra

    @property
    def extent(self) -> int:
        """Positions the span occupies in a 1-D layout (before any visual-pi squeeze)."""
        if self.kept is None or self.kept_positions == "compact":
            return self.length
        return sum(h * w + self.step_extra for h, w in self.grids) + self.extra

    def slots(self) -> torch.Tensor:
        """Each token's place in the span's ``extent`` (0, 1, 2, ... unless gaps are kept)."""
        if self.extent == self.length:
            return torch.arange(self.length, dtype=torch.float64)
        out, start = [], 0
        for t, (h, w) in enumerate(self.grids):
            out.append(start + torch.arange(self.step_extra, dtype=torch.float64))
            kept = torch.tensor(self.kept[t], dtype=torch.float64)
            out.append(start + self.step_extra + kept)
            start += self.step_extra + h * w
        out.append(start + torch.arange(self.extra, dtype=torch.float64))
        return torch.cat(out)


Span = TextSpan | VisualSpan
KEPT_POSITIONS = ("compact", "original")


def sequence_length(spans: list[Span]) -> int:
    return sum(s.length for s in spans)


def grid_steps(spans: list[Span]) -> tuple[torch.Tensor, torch.Tensor]:
    """((L,) int64, (L,) bool): the temporal step each token belongs to, numbered across the
    spans' videos (-1 at text and at tokens of no step), and which tokens are grid tokens."""
    steps, grid, first = [], [], 0
    for span in spans:
        if isinstance(span, TextSpan):
            steps.append(torch.full((span.length,), -1, dtype=torch.int64))
            grid.append(torch.zeros(span.length, dtype=torch.bool))
            continue
        ids = span.step_ids()
        steps.append(torch.where(ids >= 0, ids + first, ids))
        grid.append(span.visual_mask())
        first += len(span.grids)
    if not steps:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool)
    return torch.cat(steps), torch.cat(grid)


def step_starts(spans: list[Span]) -> list[int]:
    """Where each temporal step's tokens begin, in order (positions in the whole sequence)."""
    out, pos = [], 0
    for span in spans:
        if isinstance(span, VisualSpan):
            for t in range(len(span.grids)):
                out.append(pos)
                pos += span.step_tokens(t)
            pos += span.extra
        else:
            pos += span.length
    return out


def visual_end(spans: list[Span]) -> int:
    """Tokens up to the end of the last visual span (0 without one)."""
    end = pos = 0
    for span in spans:
        pos += span.length
        if isinstance(span, VisualSpan):
            end = pos
    return end


def visual_token_count(spans: list[Span]) -> int:
    return sum(s.length for s in spans if isinstance(s, VisualSpan))


def position_extent(spans: list[Span], visual: bool = False) -> int:
    """Positions the spans occupy in a 1-D layout (tokens, plus gaps a reducer left with
    ``kept_positions="original"``); ``visual``: the visual spans' only."""
    return sum(s.extent for s in spans if not visual or isinstance(s, VisualSpan))


def positions_1d(spans: list[Span], visual_scale: float = 1.0, start: float = 0) -> torch.Tensor:
    """(L,) positions; int64 when every step is whole, float32 otherwise."""
    out: list[torch.Tensor] = []
    pos = float(start)
    for span in spans:
        step = 1.0 / visual_scale if isinstance(span, VisualSpan) else 1.0
        if span.length == 0:
            continue
        slots = span.slots() if isinstance(span, VisualSpan) else torch.arange(span.length, dtype=torch.float64)
        out.append(pos + step * slots)
        # text resumes one past the span's last place (its last slot, unless gaps trail it)
        pos = pos + step * (span.extent - 1) + 1.0
    ids = torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)
    return _as_ids(ids)


def mrope_positions(spans: list[Span], temporal_scale: float = 1.0, start: float = 0) -> torch.Tensor:
    """(3, L) M-RoPE positions (temporal, height, width); int64 when whole, else float32."""
    out: list[torch.Tensor] = []
    pos = float(start)
    for span in spans:
        if span.length == 0:
            continue
        if isinstance(span, TextSpan):
            ids = pos + torch.arange(span.length, dtype=torch.float64)
            out.append(ids.expand(3, -1))
            pos = float(ids[-1]) + 1.0
            continue
        if span.step_extra:
            raise ValueError("M-RoPE layouts have no per-step extra tokens")
        if span.step_text is not None:
            ids = _grouped_mrope(span, pos, temporal_scale)
            out.append(ids)
            pos = float(ids.max()) + 1.0
            continue
        strides = span.strides or (1.0,) * len(span.grids)
        blocks = []
        for t, ((h, w), stride) in enumerate(zip(span.grids, strides, strict=True)):
            # cell centres in unpooled units: stride 1 -> 0, 1, 2; stride 2 -> 0.5, 2.5, ...
            rows = (torch.arange(h, dtype=torch.float64) + 0.5) * stride - 0.5
            cols = (torch.arange(w, dtype=torch.float64) + 0.5) * stride - 0.5
            grid_r, grid_c = torch.meshgrid(rows, cols, indexing="ij")
            # the step's time (Qwen2.5-VL: floor(t x interval), quantised by the adapter), then
            # the visual-pi compression
            step = span.step_positions[t] if span.step_positions is not None else t
            temporal = torch.full((h * w,), step / temporal_scale, dtype=torch.float64)
            ids = torch.stack([temporal, grid_r.reshape(-1), grid_c.reshape(-1)])
            if span.kept is not None:  # a reduced step: each kept token keeps its (t, h, w)
                ids = ids[:, list(span.kept[t])]
            blocks.append(ids + pos)
        if span.extra:
            last = max(float(b.max()) for b in blocks) if blocks else pos - 1
            blocks.append((last + 1 + torch.arange(span.extra, dtype=torch.float64)).expand(3, -1))
        ids = torch.cat(blocks, dim=1)
        out.append(ids)
        pos = float(ids.max()) + 1.0
    ids = torch.cat(out, dim=1) if out else torch.zeros(3, 0, dtype=torch.float64)
    return _as_ids(ids)


def _grouped_mrope(span: VisualSpan, pos: float, temporal_scale: float) -> torch.Tensor:
    """Qwen3-VL's layout (transformers' ``get_rope_index``): each step's text advances one
    position a token; its grid is a (1, h, w) block at the current position p (ids (p, p + i,
    p + j)); the next text starts at p + max(h, w). With ``visual-pi`` (``temporal_scale`` s)
    every advance inside the video is divided by s, the grids' own (h, w) offsets kept."""
    strides = span.strides or (1.0,) * len(span.grids)
    step = 1.0 / temporal_scale
    blocks = []
    for t, ((h, w), stride) in enumerate(zip(span.grids, strides, strict=True)):
        pre, post = span.step_text[t]
        blocks.append((pos + step * torch.arange(pre, dtype=torch.float64)).expand(3, -1))
        pos += step * pre
        rows = (torch.arange(h, dtype=torch.float64) + 0.5) * stride - 0.5
        cols = (torch.arange(w, dtype=torch.float64) + 0.5) * stride - 0.5
        grid_r, grid_c = torch.meshgrid(rows, cols, indexing="ij")
        ids = torch.stack([torch.zeros(h * w, dtype=torch.float64), grid_r.reshape(-1), grid_c.reshape(-1)]) + pos
        if span.kept is not None:
            ids = ids[:, list(span.kept[t])]
        blocks.append(ids)
        pos += step * max(round(h * stride), round(w * stride))
        blocks.append((pos + step * torch.arange(post, dtype=torch.float64)).expand(3, -1))
        pos += step * post
    return torch.cat(blocks, dim=1)


def next_position(position_ids: torch.Tensor) -> float:
    """Where the next token goes: one past the largest position so far."""
    return float(position_ids.max()) + 1.0


def _as_ids(ids: torch.Tensor) -> torch.Tensor:
    if torch.all(ids == ids.round()):
        return ids.round().to(torch.int64)
    return ids.to(torch.float32)
