"""Model families by ``config.model_type``, and ``load``: checkpoint folder or hub id → VideoLLM.

A family is one adapter file in ``models/families``; ``ADAPTERS`` is what those files define
(found by ``families.FAMILY_MODULES``), never a hand-written list.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from longvid.bundled import default_model_path
from longvid.errors import InvalidRequestError, ModelLoadError, UnsupportedModelError
from longvid.models.checkpoint.files import CheckpointFiles, read_checkpoint
from longvid.models.families import FAMILY_MODULES
from longvid.models.families.adapter import FamilyAdapter
from longvid.models.inference.budget import Geometry
from longvid.models.inference.llm import VideoLLM


def discover_adapters(modules=FAMILY_MODULES, package: str = "longvid.models.families") -> list[type[FamilyAdapter]]:
    """The adapter class each family module defines for its model types, in table order."""
    adapters = []
    for name, types in modules.items():
        module = importlib.import_module(f"{package}.{name}")
        own = [
            c
            for c in vars(module).values()
            if isinstance(c, type)
            and issubclass(c, FamilyAdapter)
            and c.__module__ == module.__name__
            and c.model_types
        ]
        if sorted(t for c in own for t in c.model_types) != sorted(types):
            raise UnsupportedModelError(f"family file {name}.py defines adapters for {own}, expected {types}")
        adapters.extend(own)
    return adapters


ADAPTERS: list[type[FamilyAdapter]] = discover_adapters()

# released 7B geometries, for the analytic columns of profile and bench/memory.py
REFERENCE_7B: dict[str, Geometry] = {t: g for adapter in ADAPTERS for t, g in adapter.reference_7b.items()}


def supported_model_types() -> list[str]:
    return sorted(t for a in ADAPTERS for t in a.model_types)


def adapter_class(model_type: str) -> type[FamilyAdapter]:
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise UnsupportedModelError(
        f"model type {model_type!r} is not supported; supported: {', '.join(supported_model_types())}"
    )


def read_adapter(model: str | Path) -> FamilyAdapter:
    """The family adapter of ``model`` built from its files alone (no weights are read)."""
    files = read_checkpoint(model, check_config=lambda c: adapter_class(c.model_type))
    return adapter_class(files.config.model_type)(files)


# transformers 5.25 kernelizes layers with kernels fetched from the Hub by default (and refuses
# to load without the `kernels` package). longvid loads without them: nothing is fetched at load
# time (offline nodes load the same), the layers are the ones longvid's exactness tests hold
# to transformers' reference, and the attention is longvid's own anyway.
KERNEL_FREE = {"use_kernels": False}


def damage(e: Exception, source: Path | str) -> str:
    """One line on what is wrong with a checkpoint's weights, naming the file when it can."""
    text = str(e)
    if type(e).__name__ == "SafetensorError":
        broken = "a weights file"
        if isinstance(source, Path):
            from safetensors import safe_open

            for f in sorted(source.glob("*.safetensors")):
                try:
                    with safe_open(str(f), "pt") as handle:
                        handle.keys()
                except Exception:
                    broken = f.name
                    break
        return f"{broken} is damaged or cut short: {text.splitlines()[0]}"
    if "mismatched" in text or "size mismatch" in text or "ignore_mismatched_sizes" in text:
        return "their sizes do not match the config (weights of another model, or a config edited after saving)"
    return f"{type(e).__name__}: {text.splitlines()[0][:200] if text else ''}"


def default_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def default_model() -> Path:
    """The bundled testbed checkpoint, the model used when none is named."""
    return default_model_path()


def load(
    model: str | Path | None = None,
    *,
    device: str = "cpu",
    dtype: torch.dtype | str | None = None,
    visual_window: int | None = None,
    device_map: str | dict | None = None,
    revision: str | None = None,
) -> VideoLLM:
    """Load a supported checkpoint (folder or hub id) as a ``VideoLLM``.

    ``model``: a folder, or a hub id as typed on the hub (``Qwen/Qwen2.5-VL-3B-Instruct``;
    ``org/name@revision`` or ``revision`` for a branch, tag or commit), read from the Hugging
    Face cache (offline) or downloaded.
    ``device``: cpu | cuda | cuda:N. ``dtype``: default float32 on CPU, bfloat16 on CUDA.
    ``visual_window``: override W_v (tokens) for the visual extension modes.
    ``device_map``: passed to transformers (e.g. "auto", through accelerate) for checkpoints
    larger than one GPU; ``device`` is then ignored.
    """
    import transformers

    if model is None:
        model = default_model()
    try:
        torch.device(device)
    except RuntimeError:
        raise InvalidRequestError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidRequestError("device 'cuda' requested but no CUDA GPU is available")
    if not isinstance(model, str | Path):
        raise InvalidRequestError(f"model must be a folder or a hub id (got {type(model).__name__})")
    files = read_checkpoint(model, check_config=lambda c: adapter_class(c.model_type), revision=revision)
    adapter_cls = adapter_class(files.config.model_type)
    model_cls = getattr(transformers, adapter_cls.model_classes[files.config.model_type])
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    pinned = {"revision": files.revision} if files.revision else {}
    try:
        if device_map is not None:
            first = "cuda" if torch.cuda.is_available() else "cpu"
            net = model_cls.from_pretrained(
                files.source, dtype=dtype or default_dtype(first), device_map=device_map, **KERNEL_FREE, **pinned
            )
        else:
            net = model_cls.from_pretrained(files.source, dtype=dtype or default_dtype(device), **KERNEL_FREE, **pinned)
            net = net.to(device)
    except OSError as e:
        raise ModelLoadError(f"{model}: cannot load ({str(e).splitlines()[0]})") from e
    except Exception as e:  # a damaged, truncated or mismatched checkpoint: one line naming what is wrong
        if type(e).__name__ != "SafetensorError" and not isinstance(e, RuntimeError | ValueError | KeyError):
            raise
        raise ModelLoadError(f"{model}: its weights cannot be loaded ({damage(e, files.source)})") from e
    return VideoLLM(adapter_cls(files, net.eval()), visual_window=visual_window)


def from_model(net, files: CheckpointFiles, visual_window: int | None = None) -> VideoLLM:
    """A ``VideoLLM`` over a model already in memory (built from a config, say) and the
    checkpoint files it belongs to."""
    return VideoLLM(adapter_class(files.config.model_type)(files, net.eval()), visual_window=visual_window)
