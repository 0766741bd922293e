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
