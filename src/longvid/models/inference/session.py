"""The one driver of the inference sequence: a video session. ``VideoLLM.ask`` (one question or
many), ``llm.chat(video)``, the web page, eval and the lmms-eval plugin all answer through it.

A session encodes its video once (decode, resize, encode, pool, reduce) under one
``AskOptions``; where the template puts the video before the question, it prefills the text
before the video and the video once, snapshots the block KV cache there, and per question
prefills the rest, decodes greedily and restores the snapshot. Follow-ups carry the earlier
turns, as a chat does: the answer to turn k equals asking the whole conversation so far in
one prompt. Every answer equals asking that question alone (tests/test_many_questions.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from longvid.extend.kvcache import cache_bytes, kv_backend
from longvid.extend.reduce import Reducer
from longvid.memory import PeakMemory
from longvid.models.inference import encoding, generation
from longvid.models.inference.generation import Layout
from longvid.models.inference.request import AskOptions, check_question
from longvid.models.inference.results import Answer, Report, VisualTokens
from longvid.models.inference.sampling import plan_sampling
from longvid.models.inference.spill import BlockStore, on
from longvid.progress import Progress

History = tuple[tuple[str, str], ...]


@dataclass
class _Prefix:
    layout: Layout
    cache: object
    snapshot: list


class VideoSession:
    """Questions and follow-ups about one video under one set of options. Create with
    ``VideoLLM.chat`` (or let ``VideoLLM.ask`` make one). ``keep_video``: hold the encoded
    video for prompts that cannot share the prefix (a chat's later turns); ``ask`` with its
    questions known up front lets the last one take it."""

    def __init__(self, llm, video, options: AskOptions, *, progress: Progress = False, keep_video: bool = True) -> None:
        self.llm, self.options, self.progress, self.keep_video = llm, options, progress, keep_video
        o = options
        self.schedule = llm.schedule(o.pooling, o.group, o.high, o.low, o.anchor_mode)
        self.reducer = None if o.reduce == "none" else Reducer(o.reduce, o.keep)
        # how many frames, at what size: a count, or qwen-vl-utils' fps and pixel budgets; under
        # a budget, a view of the adapter resizes to this video's size (the shared one is unchanged)
        self.plan = plan_sampling(llm.adapter, encoding.as_source(video), o)
        adapter, frames = self.plan.adapter, self.plan.frames
        grid = encoding.video_grid(adapter, video)
        self.kv_cap = llm.kv_cap(o.kv_budget, o.kv_bits)  # a KV budget as visual tokens per layer
        llm.check_fits(video, frames, self.schedule, self.reducer, o.kv_bits, o.prefill_chunk, o.chunk_frames, grid,
                       self.kv_cap)  # fmt: skip
        self.timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.visual: VisualTokens = encoding.encode_video(
            adapter, video, frames, self.schedule, chunk_frames=o.chunk_frames, progress=progress,
            timings=self.timings, rearrange=o.rearrange, fast_resize=o.fast_resize, reducer=self.reducer,
            spill=None if self.kv_cap is None else BlockStore(adapter.device),
        )  # fmt: skip
        self.timings["encode_total"] = time.perf_counter() - t0
        self.n_visual = self.visual.count
        self.tokens_per_frame = self.visual.tokens_per_frame(llm.adapter.frames_per_step)
        self.window = o.visual_window or llm.visual_window(self.visual.native_grid)
        self.blocks = list(self.visual.blocks) if keep_video else None
        self.history: list[tuple[str, str]] = []
        self._prefix: _Prefix | bool | None = None  # built at the first question; False: not shareable

    # ------------------------------------------------------------------ public

    def ask(self, question: str, max_new_tokens: int | None = None, follow_up: bool = True) -> Answer:
        """Answer ``question``; with ``follow_up`` the earlier turns come first in its prompt."""
        history = tuple(self.history) if follow_up else ()
        answer = self.answer([question], [history], max_new_tokens)[0]
        self.history.append((question, answer.text))
        return answer

    def answer(
        self, questions: list[str], histories: list[History] | None = None, max_new_tokens: int | None = None
    ) -> list[Answer]:
        """One answer per question (each with its own history), from the shared prefix where
        the template and the extension allow it, else from its whole prompt."""
        for q in questions:
            check_question(q)
        histories = histories or [()] * len(questions)
        limit = max_new_tokens if max_new_tokens is not None else self.options.max_new_tokens
        AskOptions.build(self.options, max_new_tokens=limit)  # checked as every option is
        with PeakMemory(self.llm.adapter.device) as mem:
            rests = self._rests(questions, histories)
            answered = []
            for k, (question, history, rest) in enumerate(zip(questions, histories, rests, strict=True)):
                last = k == len(questions) - 1
                answered.append(self._one(question, history, rest, limit, consume=last and not self.keep_video))
        return [self._answer(*a, peak=mem.peak) for a in answered]

    # ------------------------------------------------------------------ the sequence

    def _rests(self, questions: list[str], histories: list[History]) -> list[Layout | None]:
        """Per question, the layout of its text after the shared prefix (None: prefill whole)."""
        o, ad = self.options, self.llm.adapter
        if self._prefix is None:
            laid = generation.lay_out_shared(ad, questions, self.visual, o.extend, self.window, histories)
            if laid is None:  # the text before the video depends on the question, or the plan does
                self._prefix = False
                return [None] * len(questions)
            prefix, rests = laid  # the prefix took the visual blocks: they are prefilled once
            t0 = time.perf_counter()
            _, cache = generation.prefill(ad, prefix, chunk=o.prefill_chunk, kv_bits=o.kv_bits, progress=self.progress,
                                          kv_cap=self.kv_cap)  # fmt: skip
            self.timings["prefill_shared"] = time.perf_counter() - t0
            self._prefix = _Prefix(prefix, cache, cache.snapshot())
            return list(rests)
        if self._prefix is False:
            return [None] * len(questions)
        return [self._rest(q, h) for q, h in zip(questions, histories, strict=True)]

    def _rest(self, question: str, history: History) -> Layout | None:
        """The question's text after the video, positioned as in its whole prompt; None when
        its prompt would not share the prefix's positions or RoPE plan."""
        ad, prefix = self.llm.adapter, self._prefix.layout
        before, after = ad.prompt_ids(question, history)
        if len(before) != prefix.spans[0].length:
            return None
        spans = [prefix.spans[0], prefix.spans[1], generation.TextSpan(len(after))]
        plan, positions = generation.plan_and_positions(ad, spans, self.options.extend, self.window)
        if not generation.same_plan(plan, prefix.plan):
            return None
        n = prefix.length
        embeds = generation.embed_ids(ad, after)
        return Layout(embeds, [spans[2]], plan, positions[..., n:], self.window, self.options.extend, n)

    def _one(self, question: str, history: History, rest: Layout | None, limit: int, consume: bool):
        o, ad = self.options, self.llm.adapter
        t0 = time.perf_counter()
        if rest is None:  # the whole prompt, the video included
            layout = self._whole_layout(question, history, consume)
            logits, cache = generation.prefill(ad, layout, chunk=o.prefill_chunk, kv_bits=o.kv_bits,
                                               progress=self.progress, kv_cap=self.kv_cap)  # fmt: skip
            shared = 0
        else:
            prefix = self._prefix
            logits, cache = generation.prefill(ad, rest, chunk=o.prefill_chunk, kv_bits=o.kv_bits, cache=prefix.cache,
                                               kv_cap=self.kv_cap)  # fmt: skip
            layout, shared = generation.joined(prefix.layout, rest), prefix.layout.length
        t1 = time.perf_counter()
        if callable(self.progress):
            self.progress("generate", 0, limit)
        tokens = generation.decode(ad, logits, cache, layout, limit)
        held, dropped = cache_bytes(cache), cache.dropped_tokens
        if rest is not None:
            cache.restore(self._prefix.snapshot)
        del cache
        seconds = {"prefill": t1 - t0, "generate": time.perf_counter() - t1}
        return layout, tokens, held, shared, seconds, dropped

    def _whole_layout(self, question: str, history: History, consume: bool) -> Layout:
        ad, o = self.llm.adapter, self.options
        blocks = self.blocks if self.blocks is not None else self.visual.blocks
        if not history and self.blocks is None:
            # the video's blocks go to this prompt; the last question of an ``ask`` hands them over
            return generation.lay_out(ad, question, self.visual, o.extend, self.window, consume=consume)
        before, after = ad.prompt_ids(question, history)
        spans = [generation.TextSpan(len(before)), generation.visual_span(self.visual), generation.TextSpan(len(after))]
        plan, positions = generation.plan_and_positions(ad, spans, o.extend, self.window)
        pre, post = generation.embed_ids(ad, before), generation.embed_ids(ad, after)
        # a fresh list of the pieces for the prefill to consume: the video's blocks (spilled ones
        # read back one at a time) stay the session's for the next prompt
        pieces = [pre, *(on(b, ad.device, pre.dtype) for b in blocks), post]
        mask, deepstack = generation.deepstack_of(spans, self.visual)
        return Layout(pieces, spans, plan, positions, self.window, o.extend, 0, mask, deepstack)

    def _answer(self, layout: Layout, tokens: list[int], held: int, shared: int, seconds: dict, dropped: int, *,
                peak: int):  # fmt: skip
        return build_answer(
            self.llm, self.visual, layout, tokens, self.options, schedule=self.schedule, reducer=self.reducer,
            kv_cache_bytes=held, shared_prefix=shared, seconds={**self.timings, **seconds}, peak=peak,
            sampling=self.plan.note, n_visual=self.n_visual, tokens_per_frame=self.tokens_per_frame,
            kv_cap=self.kv_cap, kv_dropped=dropped,
        )  # fmt: skip


def build_answer(llm, visual: VisualTokens, layout: Layout, tokens: list[int], options: AskOptions, *, schedule,
                 reducer, kv_cache_bytes: int, shared_prefix: int, seconds: dict, peak: int, n_visual: int,
                 tokens_per_frame: list, sampling: str = "", kv_cap: int | None = None,
                 kv_dropped: int = 0) -> Answer:  # fmt: skip
    """An answer and its report: what was asked (the options) and what it took."""
    fr = visual.frames
    report = Report(
        model=llm.adapter.name,
        family=llm.family,
        frames=len(fr),
        frame_indices=[int(i) for i in fr.indices],
        timestamps=[round(float(t), 3) for t in fr.timestamps],
        visual_tokens_before_pooling=visual.tokens_before_pooling,
        visual_tokens=n_visual,
        tokens_per_frame=tokens_per_frame,
        prompt_tokens=layout.length,
        visual_window=layout.visual_window,
        language_window=llm.adapter.language_window(),
        extend=options.extend,
        scale=round(layout.plan.scale, 4),
        pooling=schedule.describe(),
        reduce="none" if reducer is None else reducer.describe(),
        rearrange=options.rearrange,
        kv_bits=options.kv_bits,
        kv_backend=kv_backend(options.kv_bits),
        kv_cache_bytes=kv_cache_bytes,
        peak_memory_bytes=peak,
        memory_device=str(llm.adapter.device),
        seconds={k: round(v, 4) for k, v in seconds.items()},
        generated_tokens=len(tokens),
        shared_prefix_tokens=shared_prefix,
        own_rope=llm.adapter.own_rope().describe(),
        sampling=sampling,
        kv_budget="" if options.budget is None else options.budget.describe(),
        kv_budget_tokens=kv_cap,
        kv_dropped_tokens=kv_dropped,
    )
    text = llm.adapter.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    return Answer(text=text, report=report, token_ids=tokens)
