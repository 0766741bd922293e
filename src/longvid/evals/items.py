"""A benchmark's question (``Item``) and the clip of a video one may be about (``Clip``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Item:
    """One question: where its video is, what to ask, what is right, how it is grouped."""

    id: str
    video: Path
    question: str
    options: tuple[str, ...]  # option texts, without their letters
    answer: str | None  # the right letter, or None where the benchmark keeps it private
    splits: dict[str, str] = field(default_factory=dict)  # e.g. {"duration": "long"}
    clip: tuple[float, float] | None = None  # seconds of the video the question is about (jsonl)

    @property
    def source(self) -> Path | Clip:
        """What is asked about: the video, or the clip of it."""
        return self.video if self.clip is None else Clip(self.video, *self.clip)


@dataclass(frozen=True)
class Clip:
    """Seconds ``start`` to ``end`` of a video: frames are spread over them alone."""

    path: Path
    start: float
    end: float
