"""Every error longvid raises on purpose, in one module.

Errors are raised where the problem is found and carry a one-line message; the CLI prints
``longvid: error: <message>`` and exits non-zero, without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class LongvidError(Exception):
    """Base class: a problem with the user's input or request, explained in one line."""


class InvalidRequestError(LongvidError, ValueError):
    """A request that cannot be served as asked (bad argument values, unknown mode)."""


class VideoError(LongvidError):
    """A problem with one video file; the message names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path does not exist."""


class NotAVideoError(VideoError):
    """The file exists but is not a readable video container (corrupt, truncated, text...)."""


class NoVideoStreamError(VideoError):
    """The container opened but holds no video stream (an audio-only file, say)."""


class EmptyVideoError(VideoError):
    """The video stream holds no frames."""


class FrameRangeError(VideoError, IndexError):
    """Frames were requested that the video does not have."""


class DecodeError(VideoError):
    """Requested frames could not be decoded (raised only with ``strict=True``)."""


class FrameRangeWarning(UserWarning):
    """A request was clamped to the frames the video has."""


class DecodeWarning(UserWarning):
    """Some requested frames could not be decoded and were left out."""


class UnsupportedModelError(LongvidError):
    """The checkpoint's model type has no longvid adapter."""


class ModelLoadError(LongvidError):
    """A checkpoint could not be read (missing folder, files or weights)."""


class DoesNotFitError(InvalidRequestError):
    """A request that would not fit in free memory. ``alternatives``: the other option values
    that would, each as ({option: value}, bytes needed beyond the weights), in the order
    tried. ``str()`` names them as Python keyword arguments; ``render("cli")`` as flags,
    ``render("web")`` as the page's field names."""

    def __init__(self, need: int, free: int, device: str, parts: dict[str, int],
                 alternatives: list[tuple[dict, int]]) -> None:  # fmt: skip
        self.need, self.free, self.device, self.parts, self.alternatives = need, free, device, parts, alternatives
        super().__init__(self.render("python"))

    def render(self, style: str = "python") -> str:
        gib = 2**30
        spell = {
            "python": lambda k, v: f"{k}={v!r}",
            "cli": lambda k, v: f"--{k.replace('_', '-')} {v}",
            "web": lambda k, v: f"{k}: {v}",
        }[style]
        tips = [
            " ".join(spell(k, v) for k, v in options.items()) + f" ({need / gib:.2g} GiB)"
            for options, need in self.alternatives
        ]
        advice = "try " + ", ".join(tips) if tips else "no smaller setting longvid knows would fit"
        parts = ", ".join(f"{name} {value / gib:.1f}" for name, value in self.parts.items())
        return (
            f"this request needs about {self.need / gib:.1f} GiB beyond the weights ({parts}) but only "
            f"{self.free / gib:.1f} GiB is free on {self.device}; {advice}"
        )
