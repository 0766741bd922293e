"""Model families (one adapter file each) behind one inference path.

The names below load on first use, so that ``longvid.models.families`` (the family names,
for help texts) can be read without importing torch and transformers.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FamilyAdapter": "longvid.models.families.adapter",
    "PixelBatch": "longvid.models.families.adapter",
    "Answer": "longvid.models.inference.results",
    "Report": "longvid.models.inference.results",
    "VideoLLM": "longvid.models.inference.llm",
    "ADAPTERS": "longvid.models.checkpoint.registry",
    "adapter_class": "longvid.models.checkpoint.registry",
    "from_model": "longvid.models.checkpoint.registry",
    "load": "longvid.models.checkpoint.registry",
    "read_adapter": "longvid.models.checkpoint.registry",
    "supported_model_types": "longvid.models.checkpoint.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'longvid.models' has no attribute {name!r}")
