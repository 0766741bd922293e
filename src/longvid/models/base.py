"""The one inference path every family shares; adapters only map their model onto it.

``VideoLLM.ask`` runs: sample frames (streaming) → resize and normalise them as the family's
official processor does → encode each chunk of frames with the family's vision tower and
projector → pool each chunk as it comes (the schedule decides each frame's stride) → lay out
text and visual tokens → choose positions and RoPE frequencies for the extension mode →
prefill the language model in chunks, computing logits for the last position only → greedy
decoding with positions that continue exactly where the prefill's stopped.

A family adapter (one file in ``longvid.models``, base class in ``adapter.py``) supplies:
its preprocessing, ``encode`` (pixels → (steps, h, w, c) grids in the language model's
space), the prompt around the video, extra visual tokens, and which position layout it uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from longvid.errors import InvalidRequestError
from longvid.extend.kvcache import DEFAULT_BLOCK, BlockKVCache, attend_blockwise, cache_bytes, kv_backend, make_cache
from longvid.extend.pooling import Schedule, pool_frames, progressive, uniform
from longvid.extend.positions import (
    Span,
    TextSpan,
    VisualSpan,
    mrope_positions,
    next_position,
    positions_1d,
    sequence_length,
)
from longvid.extend.rearrange import REARRANGE_MODES, restore_order, split_frames
from longvid.extend.rope import EXTEND_MODES, RopePlan, plan_rope
from longvid.memory import PeakMemory
from longvid.models.adapter import FamilyAdapter
from longvid.models.budget import Estimate, estimate, geometry_of, guard
from longvid.video import FrameReader, Frames, probe

# progress reporting: False (silent), True (tqdm bars on stderr) or a callable(stage, done, total)
Progress = bool | Callable[[str, int, int], None]


@dataclass
class Report:
    """What one ``ask`` did: frames, tokens, the extension applied, memory and time."""

    model: str
    family: str
    frames: int
    frame_indices: list[int]
    timestamps: list[float]
    visual_tokens_before_pooling: int
    visual_tokens: int
    tokens_per_frame: list[float]
    prompt_tokens: int
    visual_window: int
    language_window: int
    extend: str
    scale: float
    pooling: str
    rearrange: str
    kv_bits: int
    kv_backend: str
    kv_cache_bytes: int
    peak_memory_bytes: int
    memory_device: str
    seconds: dict[str, float] = field(default_factory=dict)
    generated_tokens: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    text: str
    report: Report
    token_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = self.report.to_dict()
        d["answer"] = self.text
        # short aliases users and scripts look for first
        d["visual_tokens"] = self.report.visual_tokens
        return d


@dataclass
class VisualTokens:
    """A video encoded and pooled: the embeddings in the language model's space (as the
    per-step blocks the pooler made), the grid of each temporal step and its stride."""

    blocks: list[torch.Tensor]  # each (n_i, d); together the visual tokens in order
    grids: list[tuple[int, int]]
    strides: list[int]
    extra: int
    tokens_before_pooling: int
    frames: Frames
    native_grid: tuple[int, int]  # (h, w) of one temporal step before pooling
    step_extra: int = 0  # unpooled tokens before each step's grid (Video-LLaVA's CLS)
    step_positions: tuple[float, ...] | None = None  # M-RoPE temporal position of each step

    @property
    def embeds(self) -> torch.Tensor:
        """All visual tokens, (N, d) (the blocks are joined once, then kept joined)."""
        if len(self.blocks) != 1:
            self.blocks = [torch.cat(self.blocks, dim=0)]
        return self.blocks[0]

    @property
    def count(self) -> int:
        return sum(int(b.shape[0]) for b in self.blocks)


def parse_pooling(
    pooling: str | Schedule | None, adapter: FamilyAdapter, group: int, high: int | None, low: int | None, anchors: str
) -> Schedule:
    """'uniform' (the family's own stride), 'progressive', or a Schedule."""
    if isinstance(pooling, Schedule):
        return pooling
    native = adapter.default_pooling()
    if pooling in (None, "uniform"):
        return uniform(native.stride) if high is None else uniform(high)
    if pooling == "progressive":
        hi = high if high is not None else native.stride
        lo = low if low is not None else 2 * hi
        return progressive(group=group, high=hi, low=lo, anchors=anchors)
    raise InvalidRequestError(f"unknown pooling {pooling!r}; choose uniform or progressive")


@contextmanager
def rope_override(rotary: torch.nn.Module, plan: RopePlan) -> Iterator[None]:
    """Swap the rotary module's frequencies and cos/sin factor for one request."""
    if plan.inv_freq is None:
        yield
        return
    saved_freq, saved_scaling = rotary.inv_freq, rotary.attention_scaling
    rotary.inv_freq = plan.inv_freq.to(device=saved_freq.device, dtype=saved_freq.dtype)
    rotary.attention_scaling = plan.attention_factor
    try:
        yield
    finally:
        rotary.inv_freq, rotary.attention_scaling = saved_freq, saved_scaling


class VideoLLM:
    """A video LLM with longvid's long-video inference. Create with ``longvid.load``."""

    def __init__(self, adapter: FamilyAdapter, visual_window: int | None = None) -> None:
        self.adapter = adapter
        self._visual_window = visual_window

    @property
    def family(self) -> str:
        return self.adapter.config.model_type

    @property
    def trained_frames(self) -> int:
        """Frames per video the checkpoint was trained with (its card, else the family's)."""
        return self.adapter.default_frames()

    def visual_window(self, grid: tuple[int, int] | None = None) -> int:
        """W_v: frames the checkpoint was trained with × tokens per frame (overridable)."""
        if self._visual_window is not None:
            return self._visual_window
        return self.adapter.visual_window(grid)

    # ------------------------------------------------------------------ stages

    def encode_video(
        self,
        video: str | Path | Frames | np.ndarray,
        frames: int = 32,
        pooling: Schedule | None = None,
        chunk_frames: int = 16,
        progress: Progress = False,
        timings: dict[str, float] | None = None,
        rearrange: str = "none",
        rearrange_group: int | None = None,
        fast_resize: bool = False,
    ) -> VisualTokens:
        """Decode, encode and pool a video chunk by chunk: full-resolution features of the
        whole video never exist at once. ``rearrange`` (INTP: interleave | chunks) encodes
        subsequences of ``rearrange_group`` frames (default: the trained frame count)
        instead; it needs every frame first, so it holds the unpooled features.
        ``fast_resize``: let the decoder resize (swscale, area filter) instead of longvid's
        exact bicubic-with-antialias resize after decoding (docs/models.md measures both)."""
        if frames < 1:
            raise InvalidRequestError(f"frames must be >= 1 (got {frames})")
        schedule = pooling or self.adapter.default_pooling()
        schedule.reset()
        pooler = _Pooler(self.adapter, schedule)
        if rearrange != "none":
            return self._encode_rearranged(
                video, frames, pooler, rearrange, rearrange_group or self.trained_frames, fast_resize
            )
        all_frames: list[Frames] = []
        t_decode = t_encode = 0.0
        t_prev = time.perf_counter()
        bar = _bar(progress, frames, "decode+encode", "frame")
        exact = not fast_resize
        for frames_chunk in self._frame_chunks(video, frames, self._chunk_frames(schedule, chunk_frames), exact):
            t1 = time.perf_counter()  # the generator decoded this chunk since t_prev
            bar.update(len(frames_chunk))
            with torch.inference_mode():
                pooler.add(self.adapter.encode(self.adapter.pixels(frames_chunk.array)))  # (steps, h, w, d)
            all_frames.append(_without_pixels(frames_chunk))  # decoded frames are not kept
            t_decode += t1 - t_prev
            t_prev = time.perf_counter()
            t_encode += t_prev - t1
        bar.close()
        if timings is not None:
            timings["decode"] = timings.get("decode", 0.0) + t_decode
            timings["encode"] = timings.get("encode", 0.0) + t_encode
        return pooler.finish(_merge_frames(all_frames))

    def estimate(
        self,
        frames: int,
        schedule: Schedule,
        kv_bits: int = 16,
        prefill_chunk: int | None = None,
        grid: tuple[int, int] | None = None,
    ) -> Estimate:
        """Analytic memory of a request on this model, before running it; ``grid``: (h, w)
        tokens of one temporal step of the video at hand (default: the largest possible)."""
        ad = self.adapter
        h, w = grid or ad.native_grid()
        steps = -(-frames // ad.frames_per_step)
        tokens = schedule.expected_tokens(steps, h, w) + steps * ad.step_extra_tokens + ad.extra_token_count()
        chunk = prefill_chunk or self.auto_chunk(kv_bits)
        return estimate(geometry_of(self, (h, w)), frames, tokens, kv_bits=kv_bits, prefill_chunk=chunk)

    def video_grid(self, video: str | Path | Frames | np.ndarray) -> tuple[int, int]:
        """(h, w) tokens of one temporal step of ``video`` before pooling, from its size
        alone (a file is probed, not decoded)."""
        if isinstance(video, Frames | np.ndarray):
            arr = video.array if isinstance(video, Frames) else video
            return self.adapter.native_grid(int(arr.shape[2]), int(arr.shape[1]))
        info = probe(video)
        return self.adapter.native_grid(info.width, info.height)

    def _encode_rearranged(
        self, video, frames: int, pooler: _Pooler, mode: str, group: int, fast_resize: bool = False
    ) -> VisualTokens:
        ad = self.adapter
        if ad.frames_per_step != 1:
            raise InvalidRequestError(f"{self.family} merges frames in its encoder; rearrangement would change them")
        if pooler.schedule.kind == "progressive" and pooler.schedule.anchors == "change":
            raise InvalidRequestError("change anchors need frames in order; use fixed anchors with rearrangement")
        sampled = _merge_frames(list(self._frame_chunks(video, frames, 64, not fast_resize)), keep_pixels=True)
        parts = split_frames(len(sampled), group, mode)
        grids, prefixes = [], []
        with torch.inference_mode():
            for part in parts:
                out = ad.encode(ad.pixels(sampled.array[part]))
                grid, prefix = out if isinstance(out, tuple) else (out, None)
                grids.append(grid)
                prefixes.append(prefix)
            grid = restore_order(grids, parts, len(sampled))
            prefix = None if prefixes[0] is None else restore_order(prefixes, parts, len(sampled))
            step = self._chunk_frames(pooler.schedule, 16)
            for i in range(0, len(sampled), step):
                pooler.add(grid[i : i + step] if prefix is None else (grid[i : i + step], prefix[i : i + step]))
        return pooler.finish(_merge_frames([sampled]))

    def encode_grid(self, frames: np.ndarray, chunk_frames: int = 16) -> torch.Tensor:
        """Unpooled features (steps, h, w, d) of uint8 frames, for callers that pool the same
        video many ways (the probes' embedding cache)."""
        step = self.adapter.frames_per_step
        chunk = max(step, (chunk_frames // step) * step)
        with torch.inference_mode():
            parts = [
                self.adapter.encode(self.adapter.pixels(frames[i : i + chunk])) for i in range(0, len(frames), chunk)
            ]
        return torch.cat(parts)

    def pool_grid(
        self, grid: torch.Tensor, pooling: Schedule | None = None, frames: Frames | None = None
    ) -> VisualTokens:
        """Pool cached unpooled features exactly as ``encode_video`` pools while encoding."""
        schedule = pooling or self.adapter.default_pooling()
        schedule.reset()
        pooler = _Pooler(self.adapter, schedule)
        chunk = self._chunk_frames(schedule, 16) // self.adapter.frames_per_step
        with torch.inference_mode():
            for i in range(0, grid.shape[0], chunk):
                pooler.add(grid[i : i + chunk])
        if frames is None:
            n = grid.shape[0] * self.adapter.frames_per_step
            frames = Frames(
                array=np.empty((n, 0, 0, 3), np.uint8), indices=np.arange(n), timestamps=np.zeros(n), info=None
            )
        return pooler.finish(frames)

    def _chunk_frames(self, schedule: Schedule, chunk_frames: int) -> int:
        """Frames per chunk: whole temporal steps, and whole pooling groups."""
        step = self.adapter.frames_per_step * schedule.chunk_multiple
        return max(step, (chunk_frames // step) * step)

    def _frame_chunks(self, video, frames: int, chunk: int, exact: bool = True) -> Iterator[Frames]:
        if isinstance(video, Frames):
            arr = video.array
            for i in range(0, len(arr), chunk):
                yield _slice_frames(video, slice(i, i + chunk))
            return
        if isinstance(video, np.ndarray):
            fake = Frames(array=video, indices=np.arange(len(video)), timestamps=np.zeros(len(video)), info=None)
            for i in range(0, len(video), chunk):
                yield _slice_frames(fake, slice(i, i + chunk))
            return
        reader = FrameReader(video)
        size = self.adapter.frame_size(reader.info.width, reader.info.height, exact)
        yield from reader.iter_chunks(n=frames, chunk=chunk, size=size, threads=None)

    def prompt(self, question: str, visual: VisualTokens) -> tuple[torch.Tensor, list[Span]]:
        """Embeddings of text + video + text, and the spans that describe their layout."""
        pieces, spans = self._prompt_pieces(question, visual.blocks, visual)
        return torch.cat(pieces, dim=0), spans

    def prompt_pieces(self, question: str, visual: VisualTokens) -> tuple[list[torch.Tensor], list[Span]]:
        """As ``prompt``, but the embeddings stay a list of pieces and the visual blocks are
        handed over (``visual.blocks`` is emptied): ``prefill`` then releases each piece once
        it has passed, so the prompt does not outlive its use (at 256 frames it is as large
        as a fifth of the KV cache)."""
        blocks, visual.blocks = visual.blocks, []
        return self._prompt_pieces(question, blocks, visual)

    def _prompt_pieces(self, question: str, blocks: list[torch.Tensor], visual: VisualTokens):
        ad = self.adapter
        prefix, suffix = ad.prompt_ids(question)
        embed = ad.language_model.get_input_embeddings()
        dev = ad.device
        with torch.inference_mode():
            pre = embed(torch.tensor([prefix], device=dev))[0]
            suf = embed(torch.tensor([suffix], device=dev))[0]
        pieces = [pre, *(b.to(dev, pre.dtype) for b in blocks), suf]
        spans: list[Span] = [
            TextSpan(len(prefix)),
            VisualSpan(
                tuple(visual.grids),
                tuple(float(s) for s in visual.strides),
                visual.extra,
                visual.step_extra,
                visual.step_positions,
            ),
            TextSpan(len(suffix)),
        ]
        return pieces, spans

    def positions(self, spans: list[Span], plan: RopePlan) -> torch.Tensor:
        """Position ids for the layout: (L,) or (3, L) for M-RoPE."""
        if self.adapter.position_layout == "mrope":
            return mrope_positions(spans, temporal_scale=plan.position_scale)
        return positions_1d(spans, visual_scale=plan.position_scale)

    def plan(self, mode: str, spans: list[Span], visual_window: int) -> RopePlan:
        visual = sum(s.length for s in spans if isinstance(s, VisualSpan))
        return plan_rope(
            mode,
            head_dim=self.adapter.head_dim(),
            base=self.adapter.rope_base(),
            visual_tokens=visual,
            total_tokens=sequence_length(spans),
            visual_window=visual_window,
            language_window=self.adapter.language_window(),
        )

    def _forward(self, embeds: torch.Tensor, positions: torch.Tensor, cache, logits_for: str = "last") -> torch.Tensor:
        """One pass of the language model over ``embeds`` (L, d) at ``positions``."""
        ad = self.adapter
        pos = positions.to(ad.device)
        pos = pos[:, None, :] if pos.ndim == 2 else pos[None, :]
        out = ad.language_model(inputs_embeds=embeds[None], position_ids=pos, cache=cache, use_cache=True)
        hidden = out.last_hidden_state[0]
        if logits_for == "last":
            hidden = hidden[-1:]
        return ad.model.lm_head(hidden)

    def prefill(
        self,
        embeds: torch.Tensor | list[torch.Tensor],
        positions: torch.Tensor,
        plan: RopePlan,
        chunk: int | None = None,
        all_logits: bool = False,
        progress: Progress = False,
        kv_bits: int = 16,
        cache: BlockKVCache | None = None,
    ):
        """Run the prompt through the language model in chunks of ``chunk`` tokens (default:
        ``auto_chunk``), filling a block KV cache (quantized below 16 bits) and attending
        block by block (``longvid.extend.kvcache``); logits for the last position only (or
        all, for tests). ``embeds`` may be a list of pieces (``prompt_pieces``): it is
        consumed, each piece released once passed."""
        ad = self.adapter
        chunk = chunk or self.auto_chunk(kv_bits)
        if chunk < 1:
            raise InvalidRequestError(f"prefill chunk must be >= 1 (got {chunk})")
        cache = cache if cache is not None else make_cache(kv_bits, ad.text_config)
        length = embeds.shape[0] if isinstance(embeds, torch.Tensor) else sum(int(p.shape[0]) for p in embeds)
        outs = []
        bar = _bar(progress, length, "prefill", "token")
        start = 0
        with (
            torch.inference_mode(),
            rope_override(ad.language_model.rotary_emb, plan),
            attend_blockwise(cache, ad.text_config),
        ):
            for piece in _take_chunks(embeds, chunk):
                end = start + piece.shape[0]
                logits = self._forward(piece, positions[..., start:end], cache, "all" if all_logits else "last")
                del piece
                if all_logits or end == length:
                    outs.append(logits)
                bar.update(end - start)
                start = end
            cache.flush()
        bar.close()
        return torch.cat(outs, dim=0), cache

    def auto_chunk(self, kv_bits: int = 16) -> int:
        """Prefill chunk size: one cache block (1,024 tokens). Blockwise attention needs no
        chunk x cache mask, so a chunk's transient is its MLP activations plus heads x chunk
        x block fp32 scores: for a 7B about 0.25 GB against a 2.7 GB cache at 256 frames.
        Larger chunks mean fewer passes over the (dequantized) blocks."""
        kv_backend(kv_bits)
        return DEFAULT_BLOCK

    def decode(
        self, first_logits: torch.Tensor, cache, positions: torch.Tensor, plan: RopePlan, max_new_tokens: int
    ) -> list[int]:
        """Greedy decoding from the prefill's last logits; each new token is placed one
        past the largest position so far."""
        ad = self.adapter
        eos = ad.eos_ids()
        embed = ad.language_model.get_input_embeddings()
        pos = next_position(positions)
        layout_3d = positions.ndim == 2
        tokens: list[int] = []
        logits = first_logits[-1]
        with (
            torch.inference_mode(),
            rope_override(ad.language_model.rotary_emb, plan),
            attend_blockwise(cache, ad.text_config),
        ):
            for _ in range(max_new_tokens):
                token = int(logits.argmax())
                if token in eos:
                    break
                tokens.append(token)
                e = embed(torch.tensor([token], device=ad.device))
                p = torch.tensor([pos], dtype=positions.dtype)
                p = p.expand(3, 1) if layout_3d else p
                logits = self._forward(e, p, cache)[-1]
                pos += 1.0
        return tokens

    # ------------------------------------------------------------------ public

    def ask(
        self,
        video: str | Path | Frames | np.ndarray,
        question: str,
        *,
        frames: int | None = None,
        extend: str = "none",
        pooling: str | Schedule | None = "uniform",
        group: int = 4,
        high: int | None = None,
        low: int | None = None,
        anchors: str = "fixed",
        visual_window: int | None = None,
        kv_bits: int = 16,
        rearrange: str = "none",
        max_new_tokens: int = 32,
        chunk_frames: int = 16,
        prefill_chunk: int | None = None,
        progress: Progress = False,
        fast_resize: bool = False,
    ) -> Answer:
        """Answer ``question`` about ``video`` (a path, sampled ``Frames`` or a uint8 array).

        ``frames``: how many to sample uniformly (default: as many as the checkpoint was
        trained with, ``trained_frames``).

        ``extend``: none | linear | ntk | dynamic | yarn | visual-yarn | visual-pi.
        ``pooling``: uniform (the family's own) | progressive (``group`` frames per anchor,
        strides ``high``/``low``, ``anchors`` fixed | change).
        ``kv_bits``: 16 (unquantized) | 8 | 4 | 2 (group-wise quantized KV cache).
        ``rearrange``: none | interleave | chunks (INTP: encode subsequences of the trained
        frame count, put back in frame order).
        ``fast_resize``: resize in the decoder (faster on large videos; not the official
        processor's pixels, docs/models.md).
        """
        if extend not in EXTEND_MODES:
            raise InvalidRequestError(f"unknown extension mode {extend!r}; choose from {', '.join(EXTEND_MODES)}")
        if max_new_tokens < 1:
            raise InvalidRequestError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
        backend = kv_backend(kv_bits)
        if rearrange not in REARRANGE_MODES:
            raise InvalidRequestError(f"unknown rearrangement {rearrange!r}; choose from {', '.join(REARRANGE_MODES)}")
        schedule = parse_pooling(pooling, self.adapter, group, high, low, anchors)
        if frames is None:
            frames = len(video) if isinstance(video, np.ndarray | Frames) else self.trained_frames
        if frames < 1:
            raise InvalidRequestError(f"frames must be >= 1 (got {frames})")
        need = self.estimate(frames, schedule, kv_bits, prefill_chunk, grid=self.video_grid(video))
        guard(need, self.adapter.device, frames, kv_bits, schedule.kind)
        timings: dict[str, float] = {}
        with PeakMemory(self.adapter.device) as mem:
            t0 = time.perf_counter()
            visual = self.encode_video(
                video, frames, schedule, chunk_frames, progress, timings, rearrange=rearrange, fast_resize=fast_resize
            )
            n_visual = visual.count
            embeds, spans = self.prompt_pieces(question, visual)  # consumed by prefill
            prompt_tokens = sum(int(p.shape[0]) for p in embeds)
            window = visual_window or self.visual_window(visual.native_grid)
            plan = self.plan(extend, spans, window)
            positions = self.positions(spans, plan)
            t1 = time.perf_counter()
            logits, cache = self.prefill(
                embeds, positions, plan, chunk=prefill_chunk, progress=progress, kv_bits=kv_bits
            )
            t2 = time.perf_counter()
            if callable(progress):
                progress("generate", 0, max_new_tokens)
            tokens = self.decode(logits, cache, positions, plan, max_new_tokens)
            t3 = time.perf_counter()
            held = cache_bytes(cache)
        timings.update(prefill=t2 - t1, generate=t3 - t2)
        timings["total"] = t3 - t0
        text = self.adapter.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        fr = visual.frames
        per_frame = _tokens_per_frame(visual, self.adapter.frames_per_step)
        report = Report(
            model=self.adapter.name,
            family=self.family,
            frames=len(fr),
            frame_indices=[int(i) for i in fr.indices],
            timestamps=[round(float(t), 3) for t in fr.timestamps],
            visual_tokens_before_pooling=visual.tokens_before_pooling,
            visual_tokens=n_visual,
            tokens_per_frame=per_frame,
            prompt_tokens=prompt_tokens,
            visual_window=window,
            language_window=self.adapter.language_window(),
            extend=extend,
            scale=round(plan.scale, 4),
            pooling=_describe(schedule),
            rearrange=rearrange,
            kv_bits=kv_bits,
            kv_backend=backend,
            kv_cache_bytes=held,
            peak_memory_bytes=mem.peak,
            memory_device=str(self.adapter.device),
            seconds={k: round(v, 4) for k, v in timings.items()},
            generated_tokens=len(tokens),
        )
        return Answer(text=text, report=report, token_ids=tokens)


class _Pooler:
    """Pools chunks of frame features as they arrive and collects the visual tokens."""

    def __init__(self, adapter: FamilyAdapter, schedule: Schedule) -> None:
        self.adapter, self.schedule = adapter, schedule
        self.blocks: list[torch.Tensor] = []
        self.grids: list[tuple[int, int]] = []
        self.strides: list[int] = []
        self.before = 0
        self.step_extra = 0
        self.native: tuple[int, int] | None = None

    def add(self, encoded: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> None:
        grid, prefix = encoded if isinstance(encoded, tuple) else (encoded, None)
        _, h, w, _ = grid.shape
        strides = self.schedule.strides(grid)
        pooled = [self.adapter.project(b) for b in pool_frames(grid, strides, self.adapter.pooling_op)]
        if prefix is not None:
            pooled = [torch.cat([p, b]) for p, b in zip(prefix, pooled, strict=True)]
            self.step_extra = prefix.shape[1]
        self.blocks.extend(pooled)
        self.grids.extend((-(-h // s), -(-w // s)) for s in strides)
        self.strides.extend(strides)
        self.before += grid.shape[0] * (h * w + self.step_extra)
        self.native = (int(h), int(w))

    def finish(self, frames: Frames) -> VisualTokens:
        extra = self.adapter.extra_visual_tokens()
        duration = video_duration(frames)
        blocks = self.blocks + ([] if extra is None else [extra.to(self.blocks[0].dtype)])
        n_extra = 0 if extra is None else extra.shape[0]
        return VisualTokens(
            blocks=blocks,
            grids=self.grids,
            strides=self.strides,
            extra=n_extra,
            tokens_before_pooling=self.before + n_extra,
            frames=frames,
            native_grid=self.native,
            step_extra=self.step_extra,
            step_positions=self.adapter.step_positions(len(self.grids), len(frames), duration),
        )


def _take_chunks(embeds: torch.Tensor | list[torch.Tensor], chunk: int) -> Iterator[torch.Tensor]:
    """Consecutive ``chunk``-row pieces of a tensor, or of a list of pieces that is consumed
    as it goes (each list entry dropped once its rows have been handed out)."""
    if isinstance(embeds, torch.Tensor):
        for start in range(0, embeds.shape[0], chunk):
            yield embeds[start : start + chunk]
        return
    parts: list[torch.Tensor] = []
    held = 0
    while embeds:
        piece = embeds.pop(0)
        while piece.shape[0]:
            take = min(chunk - held, piece.shape[0])
            parts.append(piece[:take])
            held += take
            piece = piece[take:]
            if held == chunk:
                out, parts, held = torch.cat(parts, dim=0), [], 0
                yield out
        del piece
    if held:
        yield torch.cat(parts, dim=0)


class _CallbackBar:
    """The part of tqdm's interface longvid uses, reporting (stage, done, total) to a callback."""

    def __init__(self, callback: Callable[[str, int, int], None], total: int, desc: str) -> None:
        self.callback, self.total, self.desc, self.n = callback, total, desc, 0
        callback(desc, 0, total)

    def update(self, k: int = 1) -> None:
        self.n += k
        self.callback(self.desc, self.n, self.total)

    def close(self) -> None:
        pass


def _bar(progress: Progress, total: int, desc: str, unit: str):
    """A tqdm bar (``progress=True``), a callback reporter (a callable), or a silent bar."""
    if callable(progress):
        return _CallbackBar(progress, total, desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False)


def _tokens_per_frame(visual: VisualTokens, frames_per_step: int) -> list[float]:
    """Tokens each frame contributes (a temporal step of k frames shares its tokens)."""
    per = [(h * w + visual.step_extra) / frames_per_step for h, w in visual.grids for _ in range(frames_per_step)]
    return [int(v) if v == int(v) else v for v in per[: len(visual.frames)]]


def _describe(schedule: Schedule) -> str:
    if schedule.kind == "uniform":
        return f"uniform(stride={schedule.stride})"
    return f"progressive(group={schedule.group}, high={schedule.high}, low={schedule.low}, anchors={schedule.anchors})"


def _slice_frames(frames: Frames, sl: slice) -> Frames:
    return Frames(
        array=frames.array[sl], indices=frames.indices[sl], timestamps=frames.timestamps[sl], info=frames.info
    )


def video_duration(frames: Frames) -> float | None:
    """Seconds of video the frames were sampled from (frame count / rate, as transformers'
    ``VideoMetadata`` has it), or None for frames that came without their video."""
    info = frames.info
    if info is None or not info.frame_count or not info.fps:
        return None
    return info.frame_count / float(info.fps)


def _without_pixels(frames: Frames) -> Frames:
    empty = np.empty((len(frames.indices), 0, 0, 3), np.uint8)
    return Frames(array=empty, indices=frames.indices, timestamps=frames.timestamps, info=frames.info)


def _merge_frames(chunks: list[Frames], keep_pixels: bool = False) -> Frames:
    """Indices and timestamps of all chunks; pixels only when asked (usually not needed)."""
    indices = np.concatenate([c.indices for c in chunks])
    timestamps = np.concatenate([c.timestamps for c in chunks])
    empty = np.empty((len(indices), 0, 0, 3), np.uint8)
    array = np.concatenate([c.array for c in chunks]) if keep_pixels else empty
    return Frames(array=array, indices=indices, timestamps=timestamps, info=chunks[0].info)
