"""Stage one of the inference sequence: a video → visual tokens in the language model's
space. Frames are decoded, resized, encoded and pooled chunk by chunk, so full-resolution
features of the whole video never exist at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from longvid.errors import InvalidRequestError
from longvid.extend.pooling import DEFAULT_ANCHORS, POOLING_MODES, Schedule, pool_frames, progressive, uniform
from longvid.extend.rearrange import REARRANGE_MODES, restore_order, split_frames
from longvid.extend.reduce import Reducer
from longvid.models.families.adapter import FamilyAdapter
from longvid.models.inference.results import VisualTokens
from longvid.models.inference.spill import Block, BlockStore, load
from longvid.progress import Progress, bar
from longvid.video import FrameReader, Frames, probe

Video = str | Path | Frames | np.ndarray


def as_source(video: Video) -> Path | Frames:
    """The one reading of a video argument: a file (str or Path), or frames already decoded
    (``Frames``, or a uint8 array (N, H, W, 3) RGB). Anything else is refused in one line."""
    if isinstance(video, Frames):
        return video
    if isinstance(video, np.ndarray):
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or len(video) == 0:
            raise InvalidRequestError(
                f"frames must be a uint8 array (N, H, W, 3) RGB with N >= 1 (got {video.dtype} {tuple(video.shape)})"
            )
        return Frames.from_array(video)
    if isinstance(video, str | Path) and str(video):
        return Path(video)
    raise InvalidRequestError(f"a video is a file path, Frames or a uint8 array (got {type(video).__name__})")


def is_decoded(video: Video) -> bool:
    """Frames given (all of them are used), rather than a file to sample."""
    return isinstance(as_source(video), Frames)


def frames_available(video: Video) -> int:
    """Frames the video has (a file is probed, not decoded)."""
    source = as_source(video)
    return len(source) if isinstance(source, Frames) else probe(source).frame_count


def schedule_for(
    pooling: str | Schedule | None,
    adapter: FamilyAdapter,
    group: int = 4,
    high: int | None = None,
    low: int | None = None,
    anchors: str = DEFAULT_ANCHORS,
) -> Schedule:
    """'uniform' (the family's own stride unless ``high``), 'progressive', or a Schedule."""
    if isinstance(pooling, Schedule):
        return pooling
    native = adapter.default_pooling()
    if pooling in (None, "uniform"):
        return uniform(native.stride) if high is None else uniform(high)
    if pooling == "progressive":
        hi = high if high is not None else native.stride
        lo = low if low is not None else 2 * hi
        return progressive(group=group, high=hi, low=lo, anchors=anchors)
    raise InvalidRequestError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLING_MODES)}")


def chunk_size(adapter: FamilyAdapter, schedule: Schedule, chunk_frames: int) -> int:
    """Frames per chunk: whole temporal steps, and whole pooling groups."""
    step = adapter.frames_per_step * schedule.chunk_multiple
    return max(step, (chunk_frames // step) * step)


def video_grid(adapter: FamilyAdapter, video: Video) -> tuple[int, int]:
    """(h, w) tokens of one temporal step of ``video`` before pooling, from its size alone
    (a file is probed, not decoded)."""
    source = as_source(video)
    if isinstance(source, Frames):
        return adapter.native_grid(int(source.array.shape[2]), int(source.array.shape[1]))
    info = probe(source)
    return adapter.native_grid(info.width, info.height)


def frame_chunks(adapter: FamilyAdapter, video: Video, frames: int, chunk: int, exact: bool = True) -> Iterator[Frames]:
    """Consecutive chunks of ``frames`` uniformly sampled frames, decoded at the size the
    family's processor starts from (arrays and ``Frames`` are taken whole, in chunks)."""
    source = as_source(video)
    if isinstance(source, Frames):
        for i in range(0, len(source), chunk):
            yield source.slice(slice(i, i + chunk))
        return
    reader = FrameReader(source)
    size = adapter.frame_size(reader.info.width, reader.info.height, exact)
    yield from reader.iter_chunks(n=frames, chunk=chunk, size=size, threads=None)


class Pooler:
    """Pools chunks of frame features as they arrive and collects the visual tokens."""

    def __init__(
        self,
        adapter: FamilyAdapter,
        schedule: Schedule,
        reducer: Reducer | None = None,
        spill: BlockStore | None = None,
    ) -> None:
        if reducer is not None and schedule.kind != "uniform":
            raise InvalidRequestError("token reduction works on the family's own (uniform) pooling, not progressive")
        self.adapter, self.schedule, self.reducer, self.spill = adapter, schedule, reducer, spill
        # this video's pooling and reduction state: the schedule and reducer stay unchanged
        self.schedule_state = schedule.start()
        self.reduce_state = None if reducer is None else reducer.start()
        self.kept: list[tuple[int, ...]] | None = [] if reducer is not None else None
        self.blocks: list[torch.Tensor] = []
        self.grids: list[tuple[int, int]] = []
        self.strides: list[int] = []
        self.before = 0
        self.step_extra = 0
        self.native: tuple[int, int] | None = None

    def add(self, encoded: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> None:
        """``encoded``: (steps, h, w, d) features, or with Video-LLaVA's unpooled CLS rows."""
        grid, prefix = encoded if isinstance(encoded, tuple) else (encoded, None)
        _, h, w, _ = grid.shape
        strides = self.schedule.strides(grid, self.schedule_state)
        pooled = pool_frames(grid, strides, self.adapter.pooling_op)
        if self.reducer is not None:  # keep the tokens the reducer chooses, then project only them
            hp, wp = -(-h // strides[0]), -(-w // strides[0])
            stacked = torch.stack(pooled)  # scored by the embeddings alone (not Qwen3-VL's DeepStack rows)
            main = self.adapter.split_visual(stacked.reshape(-1, stacked.shape[-1]))[0]
            kept = self.reducer.kept(main.reshape(len(pooled), hp, wp, -1), self.reduce_state)
            pooled = [b[k] for b, k in zip(pooled, kept, strict=True)]
            self.kept.extend(tuple(int(i) for i in k) for k in kept)
        pooled = [self.adapter.project(b) for b in pooled]
        if prefix is not None:
            pooled = [torch.cat([p, b]) for p, b in zip(prefix, pooled, strict=True)]
            self.step_extra = prefix.shape[1]
        self.blocks.extend(pooled if self.spill is None else [self.spill.put(b) for b in pooled])
        self.grids.extend((-(-h // s), -(-w // s)) for s in strides)
        self.strides.extend(strides)
        self.before += grid.shape[0] * (h * w + self.step_extra)
        self.native = (int(h), int(w))

    def finish(self, frames: Frames) -> VisualTokens:
        extra = self.adapter.extra_visual_tokens()
        blocks, deepstack, step_text = _step_text_blocks(self.adapter, self.blocks, frames, self.spill)
        blocks = blocks + ([] if extra is None else [extra.to(blocks[0].dtype)])
        n_extra = 0 if extra is None else extra.shape[0]
        return VisualTokens(
            step_text=step_text,
            deepstack=deepstack,
            blocks=blocks,
            grids=self.grids,
            strides=self.strides,
            extra=n_extra,
            tokens_before_pooling=self.before + n_extra + sum(sum(t) for t in step_text or ()),
            frames=frames,
            native_grid=self.native,
            step_extra=self.step_extra,
            step_positions=self.adapter.step_positions(len(self.grids), len(frames), frames.duration),
            kept=self.kept,
            kept_positions="compact" if self.reducer is None else self.reducer.positions,
        )


def _step_text_blocks(adapter: FamilyAdapter, blocks: list[Block], frames: Frames, spill: BlockStore | None = None):
    """(blocks, DeepStack rows per step or None, (text before, text after) per step or None):
    each step's tokens split from their DeepStack channels, between their text (Qwen3-VL's
    ``<t seconds><|vision_start|>`` ... ``<|vision_end|>``). Spilled blocks are read one at a
    time and spilled again."""
    texts = adapter.step_text(frames)
    if texts is not None and len(texts) != len(blocks):
        raise InvalidRequestError(f"{len(texts)} timestamps for {len(blocks)} temporal steps")
    embed = adapter.language_model.get_input_embeddings()
    hold = (lambda b: b) if spill is None else spill.put
    out, deepstack = [], []
    for t, block in enumerate(blocks):
        main, ds = adapter.split_visual(load(block))
        deepstack.append(None if ds is None else hold(ds))
        if texts is not None:
            pre, post = texts[t]
            with torch.inference_mode():
                text = embed(torch.tensor(pre + post, device=adapter.device))
            main = torch.cat([text[: len(pre)], main.to(text.device, text.dtype), text[len(pre) :]])
        out.append(block if texts is None and ds is None else hold(main))  # unchanged blocks stay where they are
    deepstack = None if not deepstack or deepstack[0] is None else deepstack
    step_text = None if texts is None else tuple((len(pre), len(post)) for pre, post in texts)
    return out, deepstack, step_text


def encode_video(
    adapter: FamilyAdapter,
    video: Video,
    frames: int,
    schedule: Schedule,
    *,
    chunk_frames: int = 16,
    progress: Progress = False,
    timings: dict[str, float] | None = None,
    rearrange: str = "none",
    fast_resize: bool = False,
    reducer: Reducer | None = None,
    spill: BlockStore | None = None,
) -> VisualTokens:
    """Decode, encode and pool a video chunk by chunk (then keep the tokens ``reducer``
    chooses, when given); ``spill``: each pooled block is held there as it is made (a KV
    budget's bounded memory, ``spill.BlockStore``). ``rearrange`` (INTP: interleave |
    chunks) encodes subsequences of the trained frame count instead; it needs every frame
    first, so it holds the unpooled features. ``fast_resize``: let the decoder resize
    (swscale, area filter) instead of the exact bicubic-with-antialias resize after decoding."""
    if frames < 1:
        raise InvalidRequestError(f"frames must be >= 1 (got {frames})")
    if rearrange not in REARRANGE_MODES:
        raise InvalidRequestError(f"unknown rearrangement {rearrange!r}; choose from {', '.join(REARRANGE_MODES)}")
    pooler = Pooler(adapter, schedule, reducer, spill)
    chunk = chunk_size(adapter, schedule, chunk_frames)
    if rearrange != "none":
        t0 = time.perf_counter()
        visual, decoded_at = _encode_rearranged(adapter, video, frames, pooler, rearrange, chunk, fast_resize)
        if timings is not None:
            timings["decode"] = timings.get("decode", 0.0) + decoded_at - t0
            timings["encode"] = timings.get("encode", 0.0) + time.perf_counter() - decoded_at
        return visual
    kept: list[Frames] = []
    t_decode = t_encode = 0.0
    t_prev = time.perf_counter()
    meter = bar(progress, frames, "decode+encode", "frame")
    for frames_chunk in frame_chunks(adapter, video, frames, chunk, exact=not fast_resize):
        t1 = time.perf_counter()  # the generator decoded this chunk since t_prev
        meter.update(len(frames_chunk))
        with torch.inference_mode():
            pooler.add(adapter.encode(adapter.pixels(frames_chunk.array)))  # (steps, h, w, d)
        kept.append(frames_chunk.without_pixels())  # decoded frames are not kept
        t_decode += t1 - t_prev
        t_prev = time.perf_counter()
        t_encode += t_prev - t1
    meter.close()
    if timings is not None:
        timings["decode"] = timings.get("decode", 0.0) + t_decode
        timings["encode"] = timings.get("encode", 0.0) + t_encode
    return pooler.finish(Frames.join(kept))


def _encode_rearranged(
    adapter: FamilyAdapter, video: Video, frames: int, pooler: Pooler, mode: str, chunk: int, fast_resize: bool
) -> tuple[VisualTokens, float]:
    """The visual tokens, and when decoding ended (``time.perf_counter``)."""
    if adapter.frames_per_step != 1:
        raise InvalidRequestError(
            f"{adapter.config.model_type} merges frames in its encoder; rearrangement would change them"
        )
    if pooler.schedule.kind == "progressive" and pooler.schedule.anchors == "change":
        raise InvalidRequestError("change anchors need frames in order; use fixed anchors with rearrangement")
    sampled = Frames.join(list(frame_chunks(adapter, video, frames, chunk, not fast_resize)), keep_pixels=True)
    decoded_at = time.perf_counter()
    parts = split_frames(len(sampled), adapter.default_frames(), mode)
    grids, prefixes = [], []
    with torch.inference_mode():
        for part in parts:
            out = adapter.encode(adapter.pixels(sampled.array[part]))
            grid, prefix = out if isinstance(out, tuple) else (out, None)
            grids.append(grid)
            prefixes.append(prefix)
        grid = restore_order(grids, parts, len(sampled))
        prefix = None if prefixes[0] is None else restore_order(prefixes, parts, len(sampled))
        for i in range(0, len(sampled), chunk):
            pooler.add(grid[i : i + chunk] if prefix is None else (grid[i : i + chunk], prefix[i : i + chunk]))
    return pooler.finish(sampled.without_pixels()), decoded_at


Features = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # a grid, or with Video-LLaVA's CLS rows


def encode_grid(adapter: FamilyAdapter, frames: np.ndarray, chunk_frames: int = 16) -> Features:
    """Unpooled features of uint8 frames, for callers that pool the same video many ways (the
    probes' embedding cache): (steps, h, w, d), or for a family whose encoder keeps unpooled
    rows per step (Video-LLaVA's CLS) the pair (grid, rows), both by temporal step."""
    step = adapter.frames_per_step
    chunk = max(step, (chunk_frames // step) * step)
    with torch.inference_mode():
        parts = [adapter.encode(adapter.pixels(frames[i : i + chunk])) for i in range(0, len(frames), chunk)]
    if isinstance(parts[0], tuple):
        return torch.cat([g for g, _ in parts]), torch.cat([r for _, r in parts])
    return torch.cat(parts)


def step_count(features: Features) -> int:
    """Temporal steps in ``encode_grid``'s features."""
    return (features[0] if isinstance(features, tuple) else features).shape[0]


def take_steps(features: Features, index) -> Features:
    """Those steps (a slice or a list of step indices) of ``encode_grid``'s features."""
    if isinstance(features, tuple):
        return features[0][index], features[1][index]
    return features[index]


def swap_steps(features: Features, a: int, b: int) -> Features:
    """A copy with temporal steps ``a`` and ``b`` exchanged (everything else as it was)."""
    parts = features if isinstance(features, tuple) else (features,)
    out = []
    for part in parts:
        moved = part.clone()
        moved[[a, b]] = part[[b, a]]
        out.append(moved)
    return tuple(out) if isinstance(features, tuple) else out[0]


def pool_grid(
    adapter: FamilyAdapter,
    grid: Features,
    schedule: Schedule,
    frames: Frames | None = None,
    chunk_frames: int = 16,
    reducer: Reducer | None = None,
) -> VisualTokens:
    """Pool (and reduce) cached unpooled features (``encode_grid``'s) exactly as
    ``encode_video`` does."""
    pooler = Pooler(adapter, schedule, reducer)
    steps = chunk_size(adapter, schedule, chunk_frames) // adapter.frames_per_step
    total = step_count(grid)
    with torch.inference_mode():
        for i in range(0, total, steps):
            pooler.add(take_steps(grid, slice(i, i + steps)))
    return pooler.finish(frames if frames is not None else Frames.placeholder(total * adapter.frames_per_step))
