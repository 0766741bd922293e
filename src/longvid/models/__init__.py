"""Model families (one adapter file each) behind one inference path.

The names below load on first use, so that ``longvid.models.families`` (the family names,
for help texts) can be read without importing torch and transformers.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FamilyAdapter": "longvid.models.adapter",
    "PixelBatch": "longvid.models.adapter",
    "Answer": "longvid.models.results",
    "Report": "longvid.models.results",
    "VideoLLM": "longvid.models.base",
    "ADAPTERS": "longvid.models.registry",
    "adapter_class": "longvid.models.registry",
    "from_model": "longvid.models.registry",
    "load": "longvid.models.registry",
    "read_adapter": "longvid.models.registry",
    "supported_model_types": "longvid.models.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'longvid.models' has no attribute {name!r}")
