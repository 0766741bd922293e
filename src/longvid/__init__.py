"""longvid: long-video understanding for video LLMs, training-free, in less memory."""

__version__ = "0.1.0"
