"""What ``run_eval`` asks: an ``Answerer`` (``ask``, ``ask_many``, ``load``), a plain function
wrapped as one, or a ``VideoLLM`` under one ``AskOptions`` (``ModelAnswerer``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from longvid.errors import InvalidRequestError
from longvid.evals.items import Clip
from longvid.models.inference.request import AskOptions

# answers are a letter or a short phrase naming an option; tokens past these are never read
ANSWER_TOKENS = 16


class Answerer:
    """What ``run_eval`` asks: ``ask(video, prompt) -> (response, extra line fields)``;
    ``ask_many`` for several prompts about one video (default: one by one); ``load(video)``
    the video's frames decoded ahead in a thread when ``decodes_ahead``."""

    decodes_ahead = False

    def ask(self, video, prompt: str) -> tuple[str, dict]:
        raise NotImplementedError

    def ask_many(self, video, prompts: list[str]) -> list[tuple[str, dict]]:
        return [self.ask(video, p) for p in prompts]

    def load(self, video: Path):
        return None

    def __call__(self, video, prompt: str) -> tuple[str, dict]:
        return self.ask(video, prompt)


class FunctionAnswerer(Answerer):
    """A plain ``ask(video, prompt)`` function as an ``Answerer``."""

    def __init__(self, fn: Callable[[Path, str], tuple[str, dict]]) -> None:
        self.fn = fn

    def ask(self, video, prompt: str) -> tuple[str, dict]:
        return self.fn(video, prompt)


def as_answerer(ask: Answerer | Callable[[Path, str], tuple[str, dict]]) -> Answerer:
    return ask if isinstance(ask, Answerer) else FunctionAnswerer(ask)


class ModelAnswerer(Answerer):
    """A ``VideoLLM`` under one ``AskOptions``: several questions about one video get one
    encoding and one shared prefill; the next video is decoded ahead (``decode_ahead``)."""

    def __init__(self, llm, options: AskOptions | None = None, decode_ahead: bool = True) -> None:
        self.llm, self.decodes_ahead = llm, decode_ahead
        self.options = AskOptions.build(options, max_new_tokens=ANSWER_TOKENS)

    @staticmethod
    def _line(answer) -> tuple[str, dict]:
        r = answer.report
        return answer.text, {"frames": r.frames, "visual_tokens": r.visual_tokens,
                             "shared_prefix_tokens": r.shared_prefix_tokens}  # fmt: skip

    def _for(self, video) -> AskOptions:
        """Frames decoded ahead were chosen by the fps budget already: all of them are used."""
        if isinstance(video, Path | str):
            return self.options
        return dataclasses.replace(self.options, fps=None, min_frames=None, max_frames=None, frames=len(video))

    def _video(self, video):
        return self._clip(video) if isinstance(video, Clip) else video

    def ask(self, video, prompt: str) -> tuple[str, dict]:
        video = self._video(video)
        return self._line(self.llm.ask(video, prompt, self._for(video)))

    def ask_many(self, video, prompts: list[str]) -> list[tuple[str, dict]]:
        video = self._video(video)
        return [self._line(a) for a in self.llm.ask(video, prompts, self._for(video))]

    def _clip(self, clip: Clip):
        """The frames on screen at ``frames`` times spread over the clip's seconds, first to last."""
        import numpy as np

        from longvid.video import FrameReader

        reader = FrameReader(clip.path)
        end = min(clip.end, reader.info.duration)
        if clip.start >= end:
            raise InvalidRequestError(
                f"{clip.path}: the clip starts after the video ends ({reader.info.duration:.1f} s)"
            )
        n = self.options.frames or self.llm.trained_frames
        size = self.llm.adapter.frame_size(reader.info.width, reader.info.height, not self.options.fast_resize)
        return reader.sample(timestamps=np.linspace(clip.start, end, n).tolist(), size=size)

    def load(self, video):
        """The video's frames as ``ask`` would read them (for decoding ahead, in a thread)."""
        from longvid.models.inference.sampling import plan_sampling
        from longvid.video import FrameReader

        if isinstance(video, Clip):
            return self._clip(video)
        plan = plan_sampling(self.llm.adapter, Path(video), self.options)
        reader = FrameReader(video)
        size = plan.adapter.frame_size(reader.info.width, reader.info.height, not self.options.fast_resize)
        return reader.sample(n=plan.frames, size=size)


def model_answerer(llm, options: AskOptions | dict | None = None, **fields) -> ModelAnswerer:
    """``run_eval``'s answerer over a ``VideoLLM`` (options as for ``VideoLLM.ask``)."""
    return ModelAnswerer(llm, AskOptions.build(options, **fields))
