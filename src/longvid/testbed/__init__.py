"""The bundled testbed model (trained by longvid on procedural video QA)."""

from __future__ import annotations

from pathlib import Path

from longvid.errors import ModelLoadError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def default_model_path() -> Path:
    """The bundled testbed checkpoint, the model used when none is named."""
    if not (WEIGHTS_DIR / "config.json").exists():
        raise ModelLoadError(
            "no bundled testbed model in this build yet; pass --model with a checkpoint folder or hub id "
            "(e.g. one written by `longvid tiny FAMILY OUT`)"
        )
    return WEIGHTS_DIR
