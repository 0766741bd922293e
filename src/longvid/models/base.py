"""``VideoLLM``: the one inference sequence every caller uses, over a family adapter.

``ask`` runs three stages, each a module of its own:

1. ``encoding.encode_video``: sample frames (streaming) → resize and normalise them as the
   family's official processor does → encode each chunk with the vision tower and projector
   → pool each chunk as it comes (the schedule decides each frame's stride).
2. ``generation.lay_out``: text and visual tokens as the family's prompt puts them, their
   positions and the RoPE frequencies of the extension mode.
3. ``generation.prefill`` then ``generation.decode``: the language model over the prompt in
   chunks through the block KV cache, logits for the last position only; greedy decoding
   with positions that continue exactly where the prefill's stopped.

Probes, the profiler, the benchmarks and the tests run the same three calls
(``encode_video`` → ``layout`` → ``prefill``). A family adapter (one file in
``longvid.models``, base class in ``adapter.py``) supplies the family's preprocessing,
``encode``, prompt and position layout.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from longvid.errors import InvalidRequestError
from longvid.extend.kvcache import BlockKVCache, cache_bytes, kv_backend
from longvid.extend.pooling import DEFAULT_ANCHORS, Schedule
from longvid.extend.reduce import Reducer
from longvid.memory import PeakMemory
from longvid.models import encoding, generation
from longvid.models.adapter import FamilyAdapter
from longvid.models.budget import Estimate, estimate, geometry_of, guard
from longvid.models.encoding import Video
from longvid.models.generation import Layout
from longvid.models.results import Answer, Report, VisualTokens
from longvid.models.session import VideoSession
from longvid.progress import Progress
from longvid.video import Frames, probe

__all__ = ["Answer", "Layout", "Report", "VideoLLM", "VisualTokens"]


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

    def chat(self, video: Video, **options) -> VideoSession:
        """A conversation about ``video``: encoded (and its shared prefix prefilled) once, then
        ``session.ask(question)`` as often as wanted, follow-ups carrying the earlier turns
        (options: frames, extend, pooling, reduce, keep, kv_bits, visual_window, ...)."""
        return VideoSession(self, video, **options)

    def schedule(
        self,
        pooling: str | Schedule | None = "uniform",
        group: int = 4,
        high: int | None = None,
        low: int | None = None,
        anchors: str = DEFAULT_ANCHORS,
    ) -> Schedule:
        """A pooling schedule by name: 'uniform' (the family's own stride) or 'progressive'."""
        return encoding.schedule_for(pooling, self.adapter, group, high, low, anchors)

    # ------------------------------------------------------------ the three stages

    def encode_video(
        self,
        video: Video,
        frames: int = 32,
        pooling: Schedule | None = None,
        chunk_frames: int = 16,
        progress: Progress = False,
        timings: dict[str, float] | None = None,
        rearrange: str = "none",
        fast_resize: bool = False,
        reducer: Reducer | None = None,
    ) -> VisualTokens:
        """Stage 1: decode, encode, pool and reduce (``encoding.encode_video``)."""
        return encoding.encode_video(
            self.adapter,
            video,
            frames,
            pooling or self.adapter.default_pooling(),
            chunk_frames=chunk_frames,
            progress=progress,
            timings=timings,
            rearrange=rearrange,
            fast_resize=fast_resize,
            reducer=reducer,
        )

    def layout(
        self,
        question: str,
        visual: VisualTokens,
        extend: str = "none",
        visual_window: int | None = None,
        consume: bool = False,
    ) -> Layout:
        """Stage 2: the prompt's embeddings, positions and RoPE plan (``generation.lay_out``)."""
        window = visual_window or self.visual_window(visual.native_grid)
        return generation.lay_out(self.adapter, question, visual, extend, window, consume)

    def prefill(
        self,
        layout: Layout,
        chunk: int | None = None,
        kv_bits: int = 16,
        all_logits: bool = False,
        progress: Progress = False,
        cache: BlockKVCache | None = None,
    ) -> tuple[torch.Tensor, BlockKVCache]:
        """Stage 3: the prompt through the language model (``generation.prefill``)."""
        return generation.prefill(
            self.adapter, layout, chunk=chunk, kv_bits=kv_bits, all_logits=all_logits, progress=progress, cache=cache
        )

    def decode(self, first_logits: torch.Tensor, cache: BlockKVCache, layout: Layout, max_new_tokens: int) -> list[int]:
        """Greedy decoding after ``prefill`` (``generation.decode``)."""
        return generation.decode(self.adapter, first_logits, cache, layout, max_new_tokens)

    # ------------------------------------------------------------ helpers

    def encode_grid(self, frames: np.ndarray, chunk_frames: int = 16) -> torch.Tensor:
        """Unpooled features (steps, h, w, d), for callers that pool one video many ways."""
        return encoding.encode_grid(self.adapter, frames, chunk_frames)

    def pool_grid(
        self,
        grid: torch.Tensor,
        pooling: Schedule | None = None,
        frames: Frames | None = None,
        reducer: Reducer | None = None,
    ) -> VisualTokens:
        """Pool (and reduce) cached unpooled features exactly as ``encode_video`` does."""
        schedule = pooling or self.adapter.default_pooling()
        return encoding.pool_grid(self.adapter, grid, schedule, frames, reducer=reducer)

    def video_grid(self, video: Video) -> tuple[int, int]:
        """(h, w) tokens of one temporal step of ``video`` before pooling (probed, not decoded)."""
        return encoding.video_grid(self.adapter, video)

    def auto_chunk(self, kv_bits: int = 16) -> int:
        return generation.auto_chunk(kv_bits)

    def estimate(
        self,
        frames: int,
        schedule: Schedule,
        kv_bits: int = 16,
        prefill_chunk: int | None = None,
        grid: tuple[int, int] | None = None,
        chunk_frames: int = 16,
        reducer: Reducer | None = None,
    ) -> Estimate:
        """Analytic memory of a request on this model, before running it; ``grid``: (h, w)
        tokens of one temporal step of the video at hand (default: the largest possible)."""
        ad = self.adapter
        h, w = grid or ad.native_grid()
        steps = -(-frames // ad.frames_per_step)
        if reducer is not None:  # a reducer keeps its budget of the family's own pooled grid
            s = schedule.stride
            grid_tokens = reducer.expected_tokens(steps, -(-h // s), -(-w // s))
        else:
            grid_tokens = schedule.expected_tokens(steps, h, w)
        tokens = grid_tokens + steps * ad.step_extra_tokens + ad.extra_token_count()
        chunk = prefill_chunk or generation.auto_chunk(kv_bits)
        geometry = geometry_of(self, (h, w))
        return estimate(geometry, frames, tokens, kv_bits=kv_bits, prefill_chunk=chunk, chunk_frames=chunk_frames)

    # ------------------------------------------------------------ public

    def check_fits(self, video, frames, schedule, reducer, kv_bits, prefill_chunk=None, chunk_frames=16) -> None:
        """Refuse a request that cannot fit in free memory (``budget.guard``), estimating the
        frames the video has, with the alternatives that would fit."""
        grid = self.video_grid(video)
        available = len(video) if isinstance(video, np.ndarray | Frames) else probe(video).frame_count
        planned = min(frames, available)  # the reader clamps to what the video has: so does the estimate

        def estimate_with(frames=planned, schedule=schedule, kv_bits=kv_bits) -> Estimate:
            return self.estimate(frames, schedule, kv_bits, prefill_chunk, grid, chunk_frames, reducer)

        def alternatives(free: int) -> dict[str, Estimate]:  # what each option would need instead
            alt = {}
            if schedule.kind != "progressive" and reducer is None:
                alt["--pooling progressive"] = estimate_with(schedule=self.schedule("progressive"))
            if kv_bits > 4:
                alt["--kv-bits 4"] = estimate_with(kv_bits=4)
            fewer = planned // 2
            while fewer > 1 and estimate_with(frames=fewer).beyond_weights > free:
                fewer //= 2  # the largest halving that fits
            if fewer >= 1:
                alt[f"--frames {fewer}"] = estimate_with(frames=fewer)
            return alt

        guard(estimate_with(), self.adapter.device, alternatives)

    def ask(
        self,
        video: Video,
        question: str | list[str],
        *,
        frames: int | None = None,
        extend: str = "none",
        pooling: str | Schedule | None = "uniform",
        group: int = 4,
        high: int | None = None,
        low: int | None = None,
        anchors: str | None = None,
        reduce: str = "none",
        keep: float = 0.25,
        visual_window: int | None = None,
        kv_bits: int = 16,
        rearrange: str = "none",
        max_new_tokens: int = 32,
        chunk_frames: int = 16,
        prefill_chunk: int | None = None,
        progress: Progress = False,
        fast_resize: bool = False,
    ) -> Answer | list[Answer]:
        """Answer ``question`` about ``video`` (a path, sampled ``Frames`` or a uint8 array).
        Several questions (a list) get one answer each from one encoding of the video and, where
        the template puts the video before the question, one prefill of what they share.

        ``frames``: how many to sample uniformly (default: as many as the checkpoint was
        trained with, ``trained_frames``).

        ``extend``: none | linear | ntk | dynamic | yarn | visual-yarn | visual-pi.
        ``pooling``: uniform (the family's own) | progressive (``group`` frames per anchor,
        strides ``high``/``low``, ``anchors`` change (default: the frame that differs most
        from the previous anchor) | fixed (the group's first; the default with ``rearrange``).
        ``reduce``: none | uniqueness | merge: keep ``keep`` of the family's own (uniform)
        visual tokens, chosen by content (``longvid.extend.reduce``).
        ``kv_bits``: 16 (unquantized) | 8 | 4 | 2 (group-wise quantized KV cache).
        ``rearrange``: none | interleave | chunks (INTP: encode subsequences of the trained
        frame count, put back in frame order).
        ``fast_resize``: resize in the decoder (faster on large videos; not the official
        processor's pixels, docs/models.md).
        """
        if max_new_tokens < 1:
            raise InvalidRequestError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
        questions = [question] if isinstance(question, str) else list(question)
        if not questions or not all(isinstance(q, str) for q in questions):
            raise InvalidRequestError("ask needs a question, or a list of questions")
        kv_backend(kv_bits)  # an unknown width fails here, before any decoding
        if anchors is None:  # change anchors need frames in order, which rearrangement breaks
            anchors = "fixed" if rearrange != "none" else DEFAULT_ANCHORS
        schedule = self.schedule(pooling, group, high, low, anchors)
        reducer = None if reduce == "none" else Reducer(reduce, keep)
        if frames is None:
            frames = len(video) if isinstance(video, np.ndarray | Frames) else self.trained_frames
        if frames < 1:
            raise InvalidRequestError(f"frames must be >= 1 (got {frames})")
        self.check_fits(video, frames, schedule, reducer, kv_bits, prefill_chunk, chunk_frames)
        timings: dict[str, float] = {}
        with PeakMemory(self.adapter.device) as mem:
            t0 = time.perf_counter()
            visual = self.encode_video(
                video,
                frames,
                schedule,
                chunk_frames,
                progress,
                timings,
                rearrange=rearrange,
                fast_resize=fast_resize,
                reducer=reducer,
            )
            n_visual, tokens_per_frame = visual.count, visual.tokens_per_frame(self.adapter.frames_per_step)
            answered = self._answer_all(
                questions, visual, extend, visual_window, kv_bits, prefill_chunk, max_new_tokens, progress, timings
            )
        timings["total"] = time.perf_counter() - t0
        common = dict(schedule=schedule, reducer=reducer, extend=extend, rearrange=rearrange, kv_bits=kv_bits,
                      peak=mem.peak, n_visual=n_visual, tokens_per_frame=tokens_per_frame)  # fmt: skip
        answers = [
            self._answer(visual, layout, tokens, held, shared, {**timings, **seconds}, **common)
            for layout, tokens, held, shared, seconds in answered
        ]
        return answers[0] if isinstance(question, str) else answers

    def _answer_all(self, questions, visual, extend, visual_window, kv_bits, prefill_chunk, max_new_tokens,
                    progress, timings) -> list[tuple[Layout, list[int], int, int, dict]]:  # fmt: skip
        """(layout, tokens, KV bytes, shared prefix tokens, seconds) per question. Several
        questions share one prefill of the text before the video and the video when the
        template and the extension allow it (``generation.lay_out_shared``): the cache is
        snapshotted there and each question continues from it; otherwise each question is
        prefilled whole (the video is still encoded once)."""
        shared = None
        if len(questions) > 1:
            shared = generation.lay_out_shared(
                self.adapter, questions, visual, extend, visual_window or self.visual_window(visual.native_grid)
            )
        out = []
        if shared is None:
            for k, question in enumerate(questions):
                last = k == len(questions) - 1  # the last question may take the visual blocks
                layout = self.layout(question, visual, extend, visual_window, consume=last)
                t1 = time.perf_counter()
                logits, cache = self.prefill(layout, chunk=prefill_chunk, kv_bits=kv_bits, progress=progress)
                t2 = time.perf_counter()
                if callable(progress):
                    progress("generate", 0, max_new_tokens)
                tokens = self.decode(logits, cache, layout, max_new_tokens)
                seconds = {"prefill": t2 - t1, "generate": time.perf_counter() - t2}
                out.append((layout, tokens, cache_bytes(cache), 0, seconds))
                del cache
            return out
        prefix, rests = shared
        t1 = time.perf_counter()
        _, cache = self.prefill(prefix, chunk=prefill_chunk, kv_bits=kv_bits, progress=progress)
        timings["prefill_shared"] = time.perf_counter() - t1
        snapshot = cache.snapshot()
        for rest in rests:
            t2 = time.perf_counter()
            logits, _ = self.prefill(rest, chunk=prefill_chunk, kv_bits=kv_bits, cache=cache)
            t3 = time.perf_counter()
            whole = generation.joined(prefix, rest)
            tokens = self.decode(logits, cache, whole, max_new_tokens)
            seconds = {"prefill": t3 - t2, "generate": time.perf_counter() - t3}
            out.append((whole, tokens, cache_bytes(cache), prefix.length, seconds))
            cache.restore(snapshot)
        return out

    def _answer(self, visual, layout, tokens, held, shared, seconds, *, schedule, reducer, extend, rearrange,
                kv_bits, peak, n_visual, tokens_per_frame) -> Answer:  # fmt: skip
        """An answer and its report."""
        fr = visual.frames
        report = Report(
            model=self.adapter.name,
            family=self.family,
            frames=len(fr),
            frame_indices=[int(i) for i in fr.indices],
            timestamps=[round(float(t), 3) for t in fr.timestamps],
            visual_tokens_before_pooling=visual.tokens_before_pooling,
            visual_tokens=n_visual,
            tokens_per_frame=tokens_per_frame,
            prompt_tokens=layout.length,
            visual_window=layout.visual_window,
            language_window=self.adapter.language_window(),
            extend=extend,
            scale=round(layout.plan.scale, 4),
            pooling=schedule.describe(),
            reduce="none" if reducer is None else reducer.describe(),
            rearrange=rearrange,
            kv_bits=kv_bits,
            kv_backend=kv_backend(kv_bits),
            kv_cache_bytes=held,
            peak_memory_bytes=peak,
            memory_device=str(self.adapter.device),
            seconds={k: round(v, 4) for k, v in seconds.items()},
            generated_tokens=len(tokens),
            shared_prefix_tokens=shared,
        )
        text = self.adapter.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return Answer(text=text, report=report, token_ids=tokens)
