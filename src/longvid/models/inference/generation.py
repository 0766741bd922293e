"""Stages two and three of the inference sequence: lay the prompt out (text and visual
embeddings, their positions, the RoPE plan of the extension mode), prefill the language
model through the block KV cache, and decode greedily from where the prefill stopped."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from longvid.errors import InvalidRequestError
from longvid.extend.blockwise import attend_blockwise
from longvid.extend.kvcache import DEFAULT_BLOCK, BlockKVCache, kv_backend, make_cache
from longvid.extend.positions import (
    Span,
    TextSpan,
    VisualSpan,
    grid_steps,
    mrope_positions,
    next_position,
    position_extent,
    positions_1d,
    sequence_length,
    step_starts,
    visual_end,
    visual_token_count,
)
from longvid.extend.rope import EXTEND_MODES, RopePlan, plan_rope
from longvid.models.families.adapter import FamilyAdapter
from longvid.models.inference.chunks import budget_block, chunk_sizes, take_chunks
from longvid.models.inference.planned_rope import rope_override
from longvid.models.inference.results import VisualTokens
from longvid.models.inference.spill import Rows, SpilledBlock, on
from longvid.progress import Progress, bar


@dataclass
class Layout:
    """A prompt ready for the language model: embeddings, their spans, positions, and the
    RoPE plan. ``embeds`` is one tensor (reusable) or a list of pieces that ``prefill``
    consumes, releasing each once passed (``lay_out(..., consume=True)``)."""

    embeds: torch.Tensor | list[torch.Tensor | SpilledBlock]
    spans: list[Span]
    plan: RopePlan
    positions: torch.Tensor  # (L,), or (3, L) for M-RoPE
    visual_window: int
    extend: str
    offset: int = 0  # tokens already in the cache before this layout's first (a shared prefix)
    # Qwen3-VL's DeepStack: which of this layout's tokens are visual (L,), and their rows in
    # order (visual tokens, layers, d), added to the first language layers' hidden states
    visual_mask: torch.Tensor | None = None
    deepstack: torch.Tensor | Rows | None = None

    @property
    def length(self) -> int:
        return sequence_length(self.spans)


def visual_span(visual: VisualTokens) -> VisualSpan:
    return VisualSpan(
        tuple(visual.grids),
        tuple(float(s) for s in visual.strides),
        visual.extra,
        visual.step_extra,
        visual.step_positions,
        None if visual.kept is None else tuple(visual.kept),
        visual.kept_positions,
        visual.step_text,
    )


def deepstack_of(spans: list[Span], visual: VisualTokens) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(visual mask over ``spans``, DeepStack rows in token order), or (None, None) for the
    families without DeepStack."""
    if visual.deepstack is None:
        return None, None
    mask = torch.cat([s.visual_mask() if isinstance(s, VisualSpan) else torch.zeros(s.length, dtype=torch.bool)
                      for s in spans])  # fmt: skip
    if any(isinstance(b, SpilledBlock) for b in visual.deepstack):
        return mask, Rows(visual.deepstack)  # read a chunk's rows at a time
    return mask, torch.cat(visual.deepstack)


def plan_and_positions(adapter: FamilyAdapter, spans: list[Span], extend: str, window: int):
    one_d = adapter.position_layout != "mrope"
    # a 1-D layout that keeps a reducer's gaps spans more positions than it has tokens
    plan = plan_rope(
        extend,
        head_dim=adapter.rotary_dim(),
        base=adapter.rope_base(),
        visual_tokens=position_extent(spans, visual=True) if one_d else visual_token_count(spans),
        total_tokens=position_extent(spans) if one_d else sequence_length(spans),
        visual_window=window,
        language_window=adapter.language_window(),
        own=adapter.own_rope(),
    )
    if not one_d:
        return plan, mrope_positions(spans, temporal_scale=plan.position_scale)
    return plan, positions_1d(spans, visual_scale=plan.position_scale)


def embed_ids(adapter: FamilyAdapter, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return adapter.language_model.get_input_embeddings()(torch.tensor([ids], device=adapter.device))[0]


def lay_out(
    adapter: FamilyAdapter,
    question: str,
    visual: VisualTokens,
    extend: str = "none",
    visual_window: int | None = None,
    consume: bool = False,
) -> Layout:
    """Text + video + text as the family's prompt puts them, positioned for ``extend``
    (``embeds`` one tensor, or pieces when consumed or when the video's blocks are spilled).
    ``visual_window`` defaults to the checkpoint's W_v for this video's grid. With
    ``consume`` the visual blocks are handed over (``visual.blocks`` is emptied) so the
    prompt does not outlive the prefill (at 256 frames it is a fifth of the KV cache)."""
    if extend not in EXTEND_MODES:
        raise InvalidRequestError(f"unknown extension mode {extend!r}; choose from {', '.join(EXTEND_MODES)}")
    if consume:
        blocks, visual.blocks = visual.blocks, []
    else:
        blocks = visual.blocks
    prefix, suffix = adapter.prompt_ids(question)
    pre, suf = embed_ids(adapter, prefix), embed_ids(adapter, suffix)
    pieces = [pre, *(on(b, adapter.device, pre.dtype) for b in blocks), suf]
    spans: list[Span] = [TextSpan(len(prefix)), visual_span(visual), TextSpan(len(suffix))]
    window = visual_window or adapter.visual_window(visual.native_grid)
    plan, positions = plan_and_positions(adapter, spans, extend, window)
    # a spilled video stays a list of its pieces (fresh, for the prefill to consume): read back
    # one block at a time, never joined
    spilled = any(isinstance(p, SpilledBlock) for p in pieces)
    embeds = pieces if consume or spilled else torch.cat(pieces, dim=0)
    return Layout(embeds, spans, plan, positions, window, extend, 0, *deepstack_of(spans, visual))


def same_plan(a: RopePlan, b: RopePlan) -> bool:
    same_freq = (a.inv_freq is None and b.inv_freq is None) or (
        a.inv_freq is not None and b.inv_freq is not None and torch.equal(a.inv_freq, b.inv_freq)
    )
    return same_freq and (a.scale, a.position_scale, a.attention_factor) == (
        b.scale,
        b.position_scale,
        b.attention_factor,
    )


def joined(prefix: Layout, rest: Layout) -> Layout:
    """A question's Layout continued from a shared prefix, as one (for decoding: positions
    continue past both)."""
    return replace(
        rest, spans=[*prefix.spans, *rest.spans], positions=torch.cat([prefix.positions, rest.positions], -1)
    )


def lay_out_shared(
    adapter: FamilyAdapter,
    questions: list[str],
    visual: VisualTokens,
    extend: str = "none",
    visual_window: int | None = None,
    histories: list[tuple[tuple[str, str], ...]] | None = None,
) -> tuple[Layout, list[Layout]] | None:
    """Several questions about one video, for one prefill of what they share: the text
    before the video and the video (a Layout whose visual blocks are handed over), and per
    question the text after the video (a Layout with the positions it has in that
    question's whole prompt). None when they cannot share it: a template that states the
    question before the video, or an extension whose RoPE plan depends on the question's
    length (a language-window mode beyond its window)."""
    if extend not in EXTEND_MODES:
        raise InvalidRequestError(f"unknown extension mode {extend!r}; choose from {', '.join(EXTEND_MODES)}")
    histories = histories or [()] * len(questions)
    ids = [adapter.prompt_ids(q, h) for q, h in zip(questions, histories, strict=True)]
    prefix = ids[0][0]
    if any(p != prefix for p, _ in ids[1:]) or adapter.prompt_ids("?")[0] != adapter.prompt_ids("!")[0]:
        return None  # the text before the video depends on the question
    span = visual_span(visual)
    window = visual_window or adapter.visual_window(visual.native_grid)
    laid = [
        plan_and_positions(adapter, [TextSpan(len(prefix)), span, TextSpan(len(s))], extend, window) for _, s in ids
    ]
    plan = laid[0][0]
    if any(not same_plan(plan, other) for other, _ in laid[1:]):
        return None
    shared_len = len(prefix) + span.length
    blocks, visual.blocks = visual.blocks, []
    pre = embed_ids(adapter, prefix)
    shared_spans = [TextSpan(len(prefix)), span]
    shared = Layout(
        [pre, *(on(b, adapter.device, pre.dtype) for b in blocks)],
        shared_spans,
        plan,
        laid[0][1][..., :shared_len],
        window,
        extend,
        0,
        *deepstack_of(shared_spans, visual),
    )
    rest = [
        Layout(
            embed_ids(adapter, suffix),
            [TextSpan(len(suffix))],
            plan,
            positions[..., shared_len:],
            window,
            extend,
            offset=shared_len,
        )
        for (_, suffix), (_, positions) in zip(ids, laid, strict=True)
    ]
    return shared, rest


def auto_chunk(kv_bits: int = 16) -> int:
    """Prefill chunk size: one cache block (1,024 tokens). Blockwise attention needs no
    chunk x cache mask, so a chunk's transient is its MLP activations plus heads x chunk
    x block fp32 scores: for a 7B about 0.25 GB against a 2.7 GB cache at 256 frames.
    Larger chunks mean fewer passes over the (dequantized) blocks."""
    kv_backend(kv_bits)
    return DEFAULT_BLOCK


def forward(adapter: FamilyAdapter, embeds: torch.Tensor, positions: torch.Tensor, cache, last_only: bool,
            visual_mask: torch.Tensor | None = None, deepstack: torch.Tensor | None = None):  # fmt: skip
    """One pass of the language model over ``embeds`` (L, d) at ``positions``; ``visual_mask``
    (L,) and ``deepstack`` (its visual tokens, layers, d): Qwen3-VL's DeepStack rows."""
    pos = positions.to(adapter.device)
    pos = pos[:, None, :] if pos.ndim == 2 else pos[None, :]
    extra = {}
    if deepstack is not None and visual_mask is not None and bool(visual_mask.any()):
        rows = deepstack.to(adapter.device, embeds.dtype)
        extra = {"visual_pos_masks": visual_mask.to(adapter.device)[None],
                 "deepstack_visual_embeds": [rows[:, k] for k in range(rows.shape[1])]}  # fmt: skip
    out = adapter.language_model(inputs_embeds=embeds[None], position_ids=pos, cache=cache, use_cache=True, **extra)
    hidden = out.last_hidden_state[0]
    return adapter.model.lm_head(hidden[-1:] if last_only else hidden)


def prefill(
    adapter: FamilyAdapter,
    layout: Layout,
    *,
    chunk: int | None = None,
    kv_bits: int = 16,
    all_logits: bool = False,
    progress: Progress = False,
    cache: BlockKVCache | None = None,
    kv_cap: int | None = None,
) -> tuple[torch.Tensor, BlockKVCache]:
    """Run the prompt through the language model in chunks of ``chunk`` tokens (default:
    ``auto_chunk``), filling a block KV cache (quantized below 16 bits) and attending block
    by block (``longvid.extend.kvcache``); logits for the last position only (or all).

    ``kv_cap``: a KV budget, the visual tokens each layer may hold (``extend.kvbudget``): after
    each chunk a layer past it keeps its best-scored visual rows; ``cache.dropped_tokens``
    counts the rows dropped from each layer. Chunks then end where the video does, so that the
    text after it meets the same compressed cache whether it is prefilled with the video or
    after a shared prefix."""
    chunk = chunk or auto_chunk(kv_bits)
    if chunk < 1:
        raise InvalidRequestError(f"prefill chunk must be >= 1 (got {chunk})")
    if kv_cap is not None and kv_cap < 1:
        raise InvalidRequestError(f"a KV budget must hold at least one token (got {kv_cap})")
    if cache is None:
        cache = make_cache(kv_bits, adapter.text_config, block=budget_block(kv_cap, kv_bits))
    if kv_cap is not None:
        cache.track()
    embeds, positions = layout.embeds, layout.positions
    length = embeds.shape[0] if isinstance(embeds, torch.Tensor) else sum(int(p.shape[0]) for p in embeds)
    steps, grid = grid_steps(layout.spans) if kv_cap is not None else (None, None)
    if kv_cap is None:
        sizes = chunk_sizes(length, chunk, layout.offset)
    else:  # chunks end with the video; where steps carry text or CLS rows, between steps too
        carried = any(isinstance(sp, VisualSpan) and (sp.step_text or sp.step_extra) for sp in layout.spans)
        bounds = step_starts(layout.spans) if carried else None
        sizes = chunk_sizes(length, chunk, cut=visual_end(layout.spans), bounds=bounds)
    outs = []
    meter = bar(progress, length, "prefill", "token")
    start = 0
    with (
        torch.inference_mode(),
        rope_override(adapter.language_model.rotary_emb, layout.plan),
        attend_blockwise(cache, adapter.text_config),
    ):
        used = 0  # DeepStack rows handed out so far
        for piece in take_chunks(embeds, sizes):
            end = start + piece.shape[0]
            mask = rows = None
            if layout.deepstack is not None:
                mask = layout.visual_mask[start:end]
                n = int(mask.sum())
                rows, used = layout.deepstack[used : used + n], used + n
            if steps is not None:
                cache.expect(steps[start:end], grid[start:end])
            logits = forward(adapter, piece, positions[..., start:end], cache, not all_logits, mask, rows)
            del piece
            if kv_cap is not None:
                cache.expect(None)
                cache.dropped_tokens += cache.compact(kv_cap)
            if all_logits or end == length:
                outs.append(logits)
            meter.update(end - start)
            start = end
        cache.flush()
    meter.close()
    return torch.cat(outs, dim=0), cache


def decode(adapter: FamilyAdapter, first_logits: torch.Tensor, cache, layout: Layout, max_new_tokens: int) -> list[int]:
    """Greedy decoding from the prefill's last logits; each new token is placed one past the
    largest position so far."""
    if max_new_tokens < 1:
        raise InvalidRequestError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
    positions = layout.positions
    eos = adapter.eos_ids()
    embed = adapter.language_model.get_input_embeddings()
    pos = next_position(positions)
    layout_3d = positions.ndim == 2
    tokens: list[int] = []
    logits = first_logits[-1]
    with (
        torch.inference_mode(),
        rope_override(adapter.language_model.rotary_emb, layout.plan),
        attend_blockwise(cache, adapter.text_config),
    ):
        for _ in range(max_new_tokens):
            token = int(logits.argmax())
            if token in eos:
                break
            tokens.append(token)
            e = embed(torch.tensor([token], device=adapter.device))
            p = torch.tensor([pos], dtype=positions.dtype)
            p = p.expand(3, 1) if layout_3d else p
            logits = forward(adapter, e, p, cache, last_only=True)[-1]
            pos += 1.0
    return tokens
