"""longvid: long-video understanding for video LLMs, training-free, in less memory."""

from __future__ import annotations

__version__ = "0.1.0"


def load(model=None, **kwargs):
    """Load a supported video LLM checkpoint (folder or hub id); see ``longvid.models.load``."""
    from longvid.models import load as _load

    return _load(model, **kwargs)


def prepare(model, video, question, **kwargs):
    """A checkpoint's model inputs for ``video`` and ``question``, as its official processor
    returns them, from its small files alone; see ``longvid.models.checkpoint.prepare.prepare``."""
    from longvid.models.checkpoint.prepare import prepare as _prepare

    return _prepare(model, video, question, **kwargs)
