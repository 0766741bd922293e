"""Model families (one adapter file each) behind one inference path."""

from longvid.models.base import Answer, FamilyAdapter, Report, VideoLLM
from longvid.models.registry import adapter_class, load, supported_model_types

__all__ = ["Answer", "FamilyAdapter", "Report", "VideoLLM", "adapter_class", "load", "supported_model_types"]
