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
from longvid.extend.kvbudget import parse_kv_budget
from longvid.extend.kvcache import BlockKVCache
from longvid.extend.pooling import DEFAULT_ANCHORS, Schedule
from longvid.extend.reduce import Reducer
from longvid.models.families.adapter import FamilyAdapter
from longvid.models.inference import chunks, encoding, generation
from longvid.models.inference.budget import Estimate, estimate, geometry_of, guard, kv_bytes_per_token
from longvid.models.inference.encoding import Video
from longvid.models.inference.generation import Layout
from longvid.models.inference.request import AskOptions, check_question
from longvid.models.inference.results import Answer, Report, VisualTokens
from longvid.models.inference.session import VideoSession
from longvid.progress import Progress
from longvid.video import Frames

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
        kv_cap: int | None = None,
    ) -> tuple[torch.Tensor, BlockKVCache]:
        """Stage 3: the prompt through the language model (``generation.prefill``); ``kv_cap``:
        a KV budget in visual tokens per layer (``kv_cap``)."""
        return generation.prefill(self.adapter, layout, chunk=chunk, kv_bits=kv_bits, all_logits=all_logits,
                                  progress=progress, cache=cache, kv_cap=kv_cap)  # fmt: skip

    def kv_cap(self, kv_budget: int | str | None, kv_bits: int = 16) -> int | None:
        """A KV budget (tokens, or a size such as "512MiB") as the visual tokens each layer may
        hold on this model at ``kv_bits``; None for no budget."""
        if kv_budget is None:
            return None
        geo = geometry_of(self)
        quantized = kv_bits != 16  # rows short of a whole block stay unquantized: counted so
        return parse_kv_budget(kv_budget).cap(
            kv_bytes_per_token(geo, kv_bits),
            kv_bytes_per_token(geo, 16) if quantized else None,
            (lambda tokens: chunks.budget_block(tokens, kv_bits)) if quantized else None,
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
        kv_cap: int | None = None,
    ) -> Estimate:
        """Analytic memory of a request on this model, before running it; ``grid``: (h, w)
        tokens of one temporal step of the video at hand (default: the largest possible);
        ``kv_cap``: a KV budget in visual tokens per layer."""
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
        return estimate(geometry, frames, tokens, kv_bits=kv_bits, prefill_chunk=chunk, chunk_frames=chunk_frames,
                        kv_cap=kv_cap)  # fmt: skip

    # ------------------------------------------------------------ public

    def check_fits(
        self, video, frames, schedule, reducer, kv_bits, prefill_chunk=None, chunk_frames=16, grid=None, kv_cap=None
    ) -> None:
        """Refuse a request that cannot fit in free memory (``budget.guard``: a
        ``DoesNotFitError``), estimating the frames the video has, with the option values
        that would fit instead. ``grid``: (h, w) tokens of one step (default: the video's at
        the family's own size)."""
        grid = grid or self.video_grid(video)
        planned = min(frames, encoding.frames_available(video))  # the reader clamps: so does the estimate

        def estimate_with(frames=planned, schedule=schedule, kv_bits=kv_bits, kv_cap=kv_cap) -> Estimate:
            return self.estimate(frames, schedule, kv_bits, prefill_chunk, grid, chunk_frames, reducer, kv_cap)

        def alternatives(free: int) -> list[tuple[dict, Estimate]]:  # what each option would need instead
            alt = []
            if schedule.kind != "progressive" and reducer is None:
                alt.append(({"pooling": "progressive"}, estimate_with(schedule=self.schedule("progressive"))))
            if kv_bits > 4:
                alt.append(({"kv_bits": 4}, estimate_with(kv_bits=4)))
            fewer = planned // 2
            while fewer > 1 and estimate_with(frames=fewer).beyond_weights > free:
                fewer //= 2  # the largest halving that fits
            if fewer >= 1:
                alt.append(({"frames": fewer}, estimate_with(frames=fewer)))
            per_token = kv_bytes_per_token(geometry_of(self, grid), kv_bits)
            budget = _fitting_budget(estimate_with(kv_cap=1), free, per_token)
            if budget is not None and (kv_cap is None or budget[1] < kv_cap):
                alt.append(({"kv_budget": budget[0]}, estimate_with(kv_cap=budget[1])))
            return alt

        guard(estimate_with(), self.adapter.device, alternatives)

    def chat(
        self, video: Video, options: AskOptions | dict | None = None, *, progress: Progress = False, **fields
    ) -> VideoSession:
        """A conversation about ``video``: encoded (and its shared prefix prefilled) once, then
        ``session.ask(question)`` as often as wanted, follow-ups carrying the earlier turns.
        Options as for ``ask`` (an ``AskOptions``, a mapping, or its fields as keywords)."""
        return VideoSession(self, video, AskOptions.build(options, **fields), progress=progress)

    def ask(
        self,
        video: Video,
        question: str | list[str],
        options: AskOptions | dict | None = None,
        *,
        progress: Progress = False,
        **fields,
    ) -> Answer | list[Answer]:
        """Answer ``question`` about ``video`` (a path, sampled ``Frames`` or a uint8 array).
        Several questions (a list) get one answer each from one encoding of the video and, where
        the template puts the video before the question, one prefill of what they share.

        The options are an ``AskOptions`` (``longvid.models.inference.request``: every field, its default
        and its check), a mapping, or its fields as keywords (they override ``options``):
        ``frames`` (default: as many as the checkpoint was trained with), ``extend`` (none |
        linear | ntk | dynamic | yarn | visual-yarn | visual-pi), ``visual_window``,
        ``pooling`` (uniform | progressive, with ``group``, ``high``, ``low``, ``anchors``),
        ``reduce`` (none | uniqueness | merge, with ``keep``), ``kv_bits`` (16 | 8 | 4 | 2),
        ``rearrange`` (none | interleave | chunks), ``max_new_tokens``, ``chunk_frames``,
        ``prefill_chunk``, ``fast_resize``.
        """
        opts = AskOptions.build(options, **fields)
        single = not isinstance(question, list | tuple)
        questions = [question] if single else list(question)
        if not questions:
            raise InvalidRequestError("ask needs a question, or a list of questions")
        for q in questions:
            check_question(q)
        t0 = time.perf_counter()
        session = VideoSession(self, video, opts, progress=progress, keep_video=False)
        answers = session.answer(questions)
        total = time.perf_counter() - t0
        for a in answers:
            a.report.seconds["total"] = round(total, 4)
        return answers[0] if single else answers


def _fitting_budget(least: Estimate, free: int, per_token: float) -> tuple[str | int, int] | None:
    """The largest KV budget (a size in whole MiB, or in tokens below one MiB; and its tokens per
    layer) that leaves the request within ``free`` bytes, given its estimate with the smallest
    budget (``least``): None when even that does not fit."""
    spare = free - least.beyond_weights
    tokens = int(spare // per_token)
    if tokens < 1:
        return None
    mib = int(spare // 2**20)
    if mib < 1:
        return tokens, tokens
    return f"{mib}MiB", max(1, int(mib * 2**20 // per_token))
