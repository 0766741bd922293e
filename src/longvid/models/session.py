"""A conversation about one video: ``llm.chat(video)`` encodes it once and, where the template
puts the video before the question, prefills the text before the video and the video once;
each ``ask`` then continues from that cache (restored after each turn). Follow-ups carry the
earlier turns, as a chat does: the answer to turn k equals asking the whole conversation so far
in one prompt (``VideoLLM.ask`` with the same history)."""

from __future__ import annotations

import time

import torch

from longvid.extend.kvcache import cache_bytes
from longvid.extend.reduce import Reducer
from longvid.memory import PeakMemory
from longvid.models import generation
from longvid.models.results import Answer


class VideoSession:
    """Questions and follow-ups about one video. Create with ``VideoLLM.chat``."""

    def __init__(
        self,
        llm,
        video,
        *,
        frames: int | None = None,
        extend: str = "none",
        pooling: str = "uniform",
        reduce: str = "none",
        keep: float = 0.25,
        kv_bits: int = 16,
        visual_window: int | None = None,
        prefill_chunk: int | None = None,
        fast_resize: bool = False,
        progress=False,
    ) -> None:
        self.llm = llm
        self.schedule = llm.schedule(pooling)
        self.reducer = None if reduce == "none" else Reducer(reduce, keep)
        self.options = dict(extend=extend, kv_bits=kv_bits, visual_window=visual_window, prefill_chunk=prefill_chunk)
        frames = frames or (len(video) if hasattr(video, "__len__") and not isinstance(video, str) else None)
        frames = frames or llm.trained_frames
        llm.check_fits(video, frames, self.schedule, self.reducer, kv_bits, prefill_chunk)
        self.timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.visual = llm.encode_video(
            video, frames, self.schedule, progress=progress, timings=self.timings, fast_resize=fast_resize,
            reducer=self.reducer,
        )  # fmt: skip
        self.timings["encode_total"] = time.perf_counter() - t0
        self.n_visual = self.visual.count
        self.blocks = list(self.visual.blocks)  # the prefix takes the video's; later whole prompts need them
        self.tokens_per_frame = self.visual.tokens_per_frame(llm.adapter.frames_per_step)
        self.history: list[tuple[str, str]] = []
        self._prefix = None  # (layout, cache, snapshot) once built; False when not shareable

    def _shared(self, question: str, history: tuple):
        o = self.options
        window = o["visual_window"] or self.llm.visual_window(self.visual.native_grid)
        if self._prefix is None:
            laid = generation.lay_out_shared(
                self.llm.adapter, [question], self.visual, o["extend"], window, [history]
            )  # hands the visual blocks over to the prefix: they are prefilled once
            if laid is None:
                self._prefix = False
                return None
            prefix, (rest,) = laid
            t0 = time.perf_counter()
            _, cache = self.llm.prefill(prefix, chunk=o["prefill_chunk"], kv_bits=o["kv_bits"])
            self.timings["prefill_shared"] = time.perf_counter() - t0
            self._prefix = (prefix, cache, cache.snapshot())
            return rest
        if self._prefix is False:
            return None
        prefix = self._prefix[0]
        ids = self.llm.adapter.prompt_ids(question, history)
        span = prefix.spans[1]
        # the question's text after the video, positioned as in its whole prompt
        spans = [prefix.spans[0], span, generation.TextSpan(len(ids[1]))]
        plan, positions = generation.plan_and_positions(self.llm.adapter, spans, o["extend"], window)
        if not generation.same_plan(plan, prefix.plan):
            return None
        n = prefix.length
        return generation.Layout(
            generation.embed_ids(self.llm.adapter, ids[1]), [spans[2]], plan, positions[..., n:], window, o["extend"], n
        )

    def ask(self, question: str, max_new_tokens: int = 32, follow_up: bool = True) -> Answer:
        """Answer ``question``; with ``follow_up`` the earlier turns come first in its prompt."""
        history = tuple(self.history) if follow_up else ()
        o = self.options
        with PeakMemory(self.llm.adapter.device) as mem:
            rest = self._shared(question, history)
            t0 = time.perf_counter()
            if rest is None:  # a template that asks before the video: the whole prompt each turn
                layout = self._whole_layout(question, history)
                logits, cache = self.llm.prefill(layout, chunk=o["prefill_chunk"], kv_bits=o["kv_bits"])
                shared = 0
            else:
                prefix, cache, snapshot = self._prefix
                logits, _ = self.llm.prefill(rest, chunk=o["prefill_chunk"], kv_bits=o["kv_bits"], cache=cache)
                layout = generation.joined(prefix, rest)
                shared = prefix.length
            t1 = time.perf_counter()
            tokens = self.llm.decode(logits, cache, layout, max_new_tokens)
            held = cache_bytes(cache)
            if rest is not None:
                cache.restore(snapshot)
        seconds = {**self.timings, "prefill": t1 - t0, "generate": time.perf_counter() - t1}
        answer = self.llm._answer(
            self.visual, layout, tokens, held, shared, seconds, schedule=self.schedule, reducer=self.reducer,
            extend=o["extend"], rearrange="none", kv_bits=o["kv_bits"], peak=mem.peak, n_visual=self.n_visual,
            tokens_per_frame=self.tokens_per_frame,
        )  # fmt: skip
        self.history.append((question, answer.text))
        return answer

    def _whole_layout(self, question: str, history: tuple):
        # the prompt with its history, laid out whole (the visual blocks are kept for the next turn)
        o = self.options
        ad = self.llm.adapter
        prefix_ids, suffix_ids = ad.prompt_ids(question, history)
        window = o["visual_window"] or self.llm.visual_window(self.visual.native_grid)
        spans = [generation.TextSpan(len(prefix_ids)), generation.visual_span(self.visual),
                 generation.TextSpan(len(suffix_ids))]  # fmt: skip
        plan, positions = generation.plan_and_positions(ad, spans, o["extend"], window)
        pieces = [generation.embed_ids(ad, prefix_ids), *self.blocks, generation.embed_ids(ad, suffix_ids)]
        return generation.Layout(torch.cat(pieces), spans, plan, positions, window, o["extend"])
