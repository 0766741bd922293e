"""How a prompt is cut into prefill passes, and how big a budgeted cache's blocks are."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from longvid.extend.kvcache import DEFAULT_BLOCK, DEFAULT_GROUP
from longvid.models.inference.spill import SpilledBlock, load


def budget_block(kv_cap: int | None, kv_bits: int) -> int:
    """Cache block size: one default block, but under a KV budget at a quantized width at most
    a sixteenth of the budget (in whole quantization groups), since the rows short of a whole
    block stay in full precision: a 4,096-token budget at 4 bits keeps 256-token blocks."""
    if kv_cap is None or kv_bits == 16:
        return DEFAULT_BLOCK
    return max(DEFAULT_GROUP, min(DEFAULT_BLOCK, kv_cap // 16 // DEFAULT_GROUP * DEFAULT_GROUP))


def chunk_sizes(
    length: int, chunk: int, offset: int = 0, cut: int | None = None, bounds: list[int] | None = None
) -> list[int]:
    """Rows of each prefill pass over ``length`` tokens. ``offset``: the tokens already cached;
    passes then end where they would had the whole prompt been cut from its start (so a
    question after a shared prefix meets the cache's blocks exactly as it would alone).
    ``cut`` (a KV budget): passes also end there, and text after a shared prefix starts its own;
    ``bounds``: where temporal steps begin, passes end at the last one that fits (a step whole in
    one pass keeps its timestamp with its grid)."""
    if cut is None:
        first = min((chunk - offset % chunk) % chunk, length)
        return ([first] if first else []) + _even(length - first, chunk)
    cut = min(cut, length)
    sizes, start, ends = [], 0, sorted(b for b in (bounds or []) if 0 < b < cut)
    while start < cut:
        end = min(start + chunk, cut)
        fits = [b for b in ends if start < b <= end]
        if end < cut and fits:
            end = fits[-1]
        sizes.append(end - start)
        start = end
    return sizes + _even(length - cut, chunk)


def _even(n: int, chunk: int) -> list[int]:
    return [min(chunk, n - s) for s in range(0, n, chunk)]


def take_chunks(embeds: torch.Tensor | list[torch.Tensor | SpilledBlock], sizes: list[int]) -> Iterator[torch.Tensor]:
    """Consecutive pieces of ``sizes`` rows, of a tensor or of a list of pieces that is
    consumed as it goes (each list entry dropped once its rows have been handed out)."""
    if isinstance(embeds, torch.Tensor):
        start = 0
        for size in sizes:
            yield embeds[start : start + size]
            start += size
        return
    parts: list[torch.Tensor] = []
    held = 0
    wanted = iter(sizes)
    size = next(wanted, 0)
    while embeds:
        piece = load(embeds.pop(0))  # a spilled block is read back only now
        while piece.shape[0]:
            take = min(size - held, piece.shape[0])
            parts.append(piece[:take])
            held += take
            piece = piece[take:]
            if held == size:
                out, parts, held = torch.cat(parts, dim=0), [], 0
                yield out
                size = next(wanted, 0)
        del piece
    if held:
        yield torch.cat(parts, dim=0)
