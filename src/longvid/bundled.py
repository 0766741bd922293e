"""Where the data shipped inside the package lives. A leaf module: every layer may ask it
(``models.load`` resolves the default model here without importing the testbed code)."""

from __future__ import annotations

from pathlib import Path

from longvid.errors import ModelLoadError

TESTBED_WEIGHTS = Path(__file__).resolve().parent / "testbed" / "weights"
SAMPLE_VIDEO = Path(__file__).resolve().parent / "data" / "sample.mp4"  # the two-minute sample video


def default_model_path() -> Path:
    """The bundled testbed checkpoint, the model used when none is named."""
    if not (TESTBED_WEIGHTS / "config.json").exists():
        raise ModelLoadError(
            "no bundled testbed model in this build yet; pass --model with a checkpoint folder or hub id "
            "(e.g. one written by `longvid tiny FAMILY OUT`)"
        )
    return TESTBED_WEIGHTS
