"""A KV budget: how many visual tokens each layer's cache may hold, and which to keep.

The prefill streams the video in chunks; after each chunk, a layer whose visual rows pass the
budget keeps the ``cap`` rows with the highest score and drops the rest (``BlockKVLayer.compact``).
The score is question-agnostic, so several questions can still share one compressed prefix,
and is computed once, when a row enters the cache (no cached row is ever read to score it):

    score_i = (1 - r_i) * |v_i|,   r_i = max_j mean_heads cos(v_i, v_j),  j in the previous step

- ``r_i``, temporal redundancy (after InfiniPot-V's TaR, arXiv 2506.15745): how closely the
  token repeats a token of the previous temporal step. Measured on the values rather than the
  keys: cached keys already carry their rotary position, which turns the same content at two
  times into different vectors, and values carry none.
- ``|v_i|``, the value norm (InfiniPot-V's VaN), separates the tokens that repeat nothing.

Text and tokens of no step (a newline after the video) are never dropped; a step's own text
(Qwen3-VL's timestamps) and extra rows (Video-LLaVA's CLS) take the best score of the step's
grid rows, so they count against the budget and go when their step does. Kept rows keep their
keys as written, rotary position included, so every kept token keeps its position (and, for
Qwen2.5-VL, its time) and the RoPE plan spans the whole video.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from longvid.errors import InvalidRequestError

if TYPE_CHECKING:  # torch is imported where scores are computed: the request type parses budgets torch-free
    import torch

_UNITS = {"": None, "tokens": None, "token": None, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "kb": 10**3, "mb": 10**6, "gb": 10**9}  # fmt: skip
_FORM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class KVBudget:
    """A budget as given: a count of visual tokens per layer, or bytes for the whole cache."""

    tokens: int | None = None
    bytes: int | None = None
    given: str = field(default="", compare=False)  # as the user wrote it, for reports

    def cap(self, bytes_per_token: float, full_precision: float | None = None, block=None) -> int:
        """Visual tokens each layer may hold: the count, or the most tokens whose keys and values
        fit the bytes across all layers. For a quantized cache (``full_precision``: what a token
        costs unquantized; ``block(tokens)``: the cache's block size), the rows short of one
        whole block stay in full precision and are counted as such."""
        if self.tokens is not None:
            return self.tokens
        most = int(self.bytes // bytes_per_token)
        if full_precision is not None and block is not None:

            def held(t: int) -> float:  # worst case: a block's worth less one row unquantized
                tail = min(t, block(t) - 1)
                return (t - tail) * bytes_per_token + tail * full_precision

            low, high = 0, most
            while low < high:  # the largest t with held(t) <= bytes (held grows with t)
                mid = (low + high + 1) // 2
                low, high = (mid, high) if held(mid) <= self.bytes else (low, mid - 1)
            most = low
        if most < 1:
            raise InvalidRequestError(
                f"kv_budget {self.describe()} holds no token (one costs {bytes_per_token:,.0f} bytes in the cache)"
            )
        return most

    def describe(self) -> str:
        if self.given:
            return self.given
        if self.tokens is not None:
            return f"{self.tokens} tokens"
        return f"{self.bytes} bytes"


def parse_kv_budget(value: int | str) -> KVBudget:
    """``4096`` or ``"4096 tokens"`` (visual tokens per layer), or ``"512MiB"``, ``"1.5GiB"``,
    ``"800MB"`` (the cache's keys and values). Anything else is refused in one line."""
    if isinstance(value, bool):
        raise InvalidRequestError(f"kv_budget must be tokens or a size such as 512MiB (got {value!r})")
    if isinstance(value, int):
        if value > 10**15:
            raise InvalidRequestError(f"kv_budget is too large (got {value!r:.40})")
        if value < 1:
            raise InvalidRequestError(f"kv_budget in tokens must be a whole number >= 1 (got {value!r})")
        return KVBudget(tokens=value, given=f"{value} tokens")
    match = _FORM.match(str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise InvalidRequestError(
            f"kv_budget must be a token count (4096) or a size (512MiB, 1.5GiB, 800MB) (got {value!r})"
        )
    number, unit = match.group(1), match.group(2).lower()
    if len(number) > 16:  # beyond any memory there is (and beyond a float's range)
        raise InvalidRequestError(f"kv_budget is too large (got {value!r:.40})")
    scale = _UNITS[unit]
    if scale is None:
        if "." in number or int(number) < 1:
            raise InvalidRequestError(f"kv_budget in tokens must be a whole number >= 1 (got {value!r})")
        return KVBudget(tokens=int(number), given=f"{int(number)} tokens")
    size = math.floor(float(number) * scale)
    if size < 1:
        raise InvalidRequestError(f"kv_budget must be more than 0 bytes (got {value!r})")
    return KVBudget(bytes=size, given=f"{number}{match.group(2)}")


def step_scores(
    values: torch.Tensor,
    steps: torch.Tensor,
    grid: torch.Tensor,
    recent: tuple[torch.Tensor, torch.Tensor] | None,
):
    """Scores of new cache rows, and the rows to remember for the next chunk.

    ``values``: (kv_heads, n, d) the rows' values; ``steps``: (n,) the temporal step each row
    belongs to, or -1 for a row that is never dropped (scored +inf); ``grid``: (n,) which rows
    are grid tokens (scored by redundancy and norm); a step's other rows (its timestamp text,
    a CLS row) take the best score of its grid rows in the chunk, so they go when their step
    does. ``recent``: (unit values (kv_heads, m, d), their steps (m,)) of grid rows kept from
    earlier chunks: the last two steps seen, so that a step split across chunks still finds the
    step before it. Returns ((n,) float32 scores, new recent)."""
    import torch

    steps, grid = steps.cpu(), grid.cpu()
    unit = torch.nn.functional.normalize(values.float(), dim=-1)
    norm = values.float().norm(dim=-1).mean(0).cpu()  # (n,)
    scores = torch.full((values.shape[1],), math.inf)
    mine = grid & (steps >= 0)
    grid_steps = torch.where(mine, steps, torch.tensor(-1))
    if recent is not None:
        all_unit, all_steps = torch.cat([recent[0], unit], dim=1), torch.cat([recent[1], grid_steps])
    else:
        all_unit, all_steps = unit, grid_steps
    offset = all_steps.shape[0] - steps.shape[0]
    for t in torch.unique(steps[steps >= 0]).tolist():
        rows = (grid_steps == t).nonzero().squeeze(1)
        if rows.numel():
            before = (all_steps == t - 1).nonzero().squeeze(1) if t > 0 else None  # -1 marks text, not a step
            if before is not None and before.numel():
                sim = torch.einsum("hid,hjd->hij", all_unit[:, offset + rows], all_unit[:, before]).mean(0)
                redundancy = sim.amax(dim=1).clamp(0, 1).cpu()
            else:
                redundancy = torch.zeros(rows.numel())
            scores[rows] = ((1 - redundancy) * norm[rows]).float()
        others = ((steps == t) & ~grid).nonzero().squeeze(1)
        if others.numel() and rows.numel():
            scores[others] = scores[rows].max()
    last = int(all_steps.max()) if all_steps.numel() else -1
    keep = (all_steps >= last - 1) & (all_steps >= 0)
    new_recent = (all_unit[:, keep], all_steps[keep]) if bool(keep.any()) else recent
    return scores, new_recent


def rows_to_keep(scores: torch.Tensor, cap: int) -> torch.Tensor | None:
    """(n,) bool: every never-dropped row (+inf) and the ``cap`` highest-scoring others; None
    when the droppable rows already fit."""
    import torch

    droppable = torch.isfinite(scores)
    count = int(droppable.sum())
    if count <= cap:
        return None
    keep = ~droppable
    ranked = torch.where(droppable, scores, torch.tensor(-math.inf))
    top = torch.topk(ranked, cap, sorted=False).indices if cap else torch.zeros(0, dtype=torch.long)
    keep[top] = True
    return keep
