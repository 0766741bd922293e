"""Model families (one adapter file each) behind one inference path."""

from longvid.models.adapter import FamilyAdapter, PixelBatch
from longvid.models.base import Answer, Report, VideoLLM
from longvid.models.registry import ADAPTERS, adapter_class, from_model, load, read_adapter, supported_model_types

__all__ = [
    "ADAPTERS",
    "Answer",
    "FamilyAdapter",
    "PixelBatch",
    "Report",
    "VideoLLM",
    "adapter_class",
    "from_model",
    "load",
    "read_adapter",
    "supported_model_types",
]
