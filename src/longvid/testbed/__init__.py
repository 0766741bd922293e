"""The bundled testbed model (trained by longvid on procedural video QA)."""

from __future__ import annotations

from longvid.bundled import default_model_path

__all__ = ["default_model_path"]
