"""Model families by ``config.model_type``, and ``load``: checkpoint folder or hub id → VideoLLM."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from longvid.errors import InvalidRequestError, ModelLoadError, UnsupportedModelError
from longvid.models.base import FamilyAdapter, VideoLLM
from longvid.models.llava_next_video import LlavaNextVideoAdapter
from longvid.models.llava_onevision import LlavaOnevisionAdapter
from longvid.models.qwen2_vl import Qwen2VLAdapter
from longvid.models.video_llava import VideoLlavaAdapter

ADAPTERS: list[type[FamilyAdapter]] = [LlavaOnevisionAdapter, Qwen2VLAdapter, LlavaNextVideoAdapter, VideoLlavaAdapter]

# model_type -> transformers class name (imported lazily: transformers is slow to import)
MODEL_CLASSES = {
    "llava_onevision": "LlavaOnevisionForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "llava_next_video": "LlavaNextVideoForConditionalGeneration",
    "video_llava": "VideoLlavaForConditionalGeneration",
}


def supported_model_types() -> list[str]:
    return sorted(t for a in ADAPTERS for t in a.model_types)


def adapter_class(model_type: str) -> type[FamilyAdapter]:
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise UnsupportedModelError(
        f"model type {model_type!r} is not supported; supported: {', '.join(supported_model_types())}"
    )


def _resolve(model: str | Path) -> Path | str:
    p = Path(model)
    if p.exists():
        if not (p / "config.json").exists():
            raise ModelLoadError(f"{p}: not a model folder (no config.json)")
        return p
    if str(model).startswith((".", "/", "~")) or Path(str(model)).suffix:
        raise ModelLoadError(f"{model}: no such model folder")
    return str(model)  # a hub id


def _read_checkpoint_json(source: Path | str, name: str) -> dict:
    if isinstance(source, Path):
        f = source / name
        return json.loads(f.read_text()) if f.exists() else {}
    from transformers.utils import cached_file

    try:
        f = cached_file(source, name, _raise_exceptions_for_missing_entries=False)
    except OSError:
        return {}
    return json.loads(Path(f).read_text()) if f else {}


def _chat_template(source: Path | str, tokenizer) -> str | None:
    if isinstance(source, Path) and (source / "chat_template.jinja").exists():
        return (source / "chat_template.jinja").read_text()
    processor = _read_checkpoint_json(source, "chat_template.json")
    return processor.get("chat_template") or getattr(tokenizer, "chat_template", None) or None


def default_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def load(
    model: str | Path | None = None,
    *,
    device: str = "cpu",
    dtype: torch.dtype | str | None = None,
    visual_window: int | None = None,
    device_map: str | dict | None = None,
) -> VideoLLM:
    """Load a supported checkpoint (folder or hub id) as a ``VideoLLM``.

    ``device``: cpu | cuda | cuda:N. ``dtype``: default float32 on CPU, bfloat16 on CUDA.
    ``visual_window``: override W_v (tokens) for the visual extension modes.
    ``device_map``: passed to transformers (e.g. "auto", through accelerate) for checkpoints
    larger than one GPU; ``device`` is then ignored.
    """
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    if model is None:
        from longvid.testbed import default_model_path

        model = default_model_path()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidRequestError("device 'cuda' requested but no CUDA GPU is available")
    source = _resolve(model)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{model}: cannot read its config ({str(e).splitlines()[0]})") from e
    adapter_cls = adapter_class(config.model_type)
    model_cls = getattr(transformers, MODEL_CLASSES[config.model_type])
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    try:
        if device_map is not None:
            first = "cuda" if torch.cuda.is_available() else "cpu"
            net = model_cls.from_pretrained(source, dtype=dtype or default_dtype(first), device_map=device_map).eval()
        else:
            net = model_cls.from_pretrained(source, dtype=dtype or default_dtype(device)).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as e:
        raise ModelLoadError(f"{model}: cannot load ({str(e).splitlines()[0]})") from e
    preprocess = _read_checkpoint_json(source, "video_preprocessor_config.json") or _read_checkpoint_json(
        source, "preprocessor_config.json"
    )
    adapter = adapter_cls(net, tokenizer, preprocess, name=str(model))
    adapter.chat_template = _chat_template(source, tokenizer)
    return VideoLLM(adapter, visual_window=visual_window)
