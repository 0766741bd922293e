"""The encoder trainer's configuration: stages and their defaults, every key checked, read
from a TOML or YAML file whose relative paths are taken from the file's folder."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from longvid.errors import InvalidRequestError

STAGES = {
    "image": dict(frames=1, mask_ratio=0.5, trainable="all"),
    "short": dict(frames=16, mask_ratio=0.75, trainable="all"),
    "long": dict(frames=64, mask_ratio=0.75, trainable="last:4"),
}


# keys that do not change what is computed: a resumed run may set them differently
RESUME_MAY_CHANGE = {"workers", "threads", "save_every", "eval_manifest", "cache_decoded"}


@dataclass
class EncoderTrainConfig:
    manifest: str
    out: str
    stage: str = "short"
    frames: int | None = None  # stage default
    mask_ratio: float | None = None  # stage default
    trainable: str | None = None  # all | last:K (stage default)
    size: str = "micro"  # VideoViT size (ignored when ``init`` gives a model)
    backbone: str = "joint"
    pooling: str = "mean"
    resolution: int | None = None  # frame side in pixels (default: the size's image_size)
    # input sampling: frames per tubelet (coarse temporal patching: 4 or 8) and the patch side
    # in pixels (coarse spatial patching: twice the size's) for a new model; None: the size's
    tubelet: int | None = None
    patch: int | None = None
    tubes: bool = False  # sparse multi-kernel tubes (TubeViT-style, encoder/tubes.py; joint backbone)
    init: str | None = None  # checkpoint of an earlier stage
    adapt: str = "none"  # none | lora | mlp: train only adapters (and the head) (encoder/adapt.py)
    adapt_rank: int = 8  # LoRA rank, or the MLP adapter's bottleneck width
    init_image: str | None = None  # a pretrained image tower to start from (SigLIP folder; encoder/towers.py)
    inflate: str = "central"  # image -> video kernel inflation
    text: str | None = None  # transformers encoder folder; None: all-MiniLM-L6-v2
    text_trainable: str = "head"  # head | all
    steps: int = 1000
    batch: int = 32  # clips per rank per step
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup: int = 50
    schedule: str = "cosine"  # cosine | constant (after warmup)
    min_lr: float = 0.0
    seed: int = 0
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    grad_checkpointing: bool = False
    distributed: str = "ddp"  # ddp | fsdp (under torchrun)
    workers: int = 2  # DataLoader processes decoding videos
    cache_decoded: bool = False  # keep decoded clips in memory (small sets; decodes in-process once)
    threads: int = 1  # torch threads per process (1: 2 threads under contention ran 20x slower here)
    save_every: int = 100
    # each caption told in reverse order joins the video->text negatives (NegCLIP-style hard
    # negatives): without them a batch rarely holds two captions that differ only in order
    order_negatives: bool = False
    eval_manifest: str | None = None  # R@1 and order accuracy on it at the end

    def __post_init__(self) -> None:
        _check_types(self)
        if self.stage not in STAGES:
            raise InvalidRequestError(f"unknown stage {self.stage!r}; choose from {', '.join(STAGES)}")
        for key, value in STAGES[self.stage].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.stage == "image":
            self.frames = 1
        parse_trainable(self.trainable)
        if self.text_trainable not in ("head", "all"):
            raise InvalidRequestError(f"text_trainable must be head or all (got {self.text_trainable!r})")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise InvalidRequestError(f"precision must be auto, bf16 or fp32 (got {self.precision!r})")
        if self.distributed not in ("ddp", "fsdp"):
            raise InvalidRequestError(f"distributed must be ddp or fsdp (got {self.distributed!r})")
        if self.schedule not in ("cosine", "constant"):
            raise InvalidRequestError(f"schedule must be cosine or constant (got {self.schedule!r})")
        if self.adapt not in ("none", "lora", "mlp"):
            raise InvalidRequestError(f"adapt must be none, lora or mlp (got {self.adapt!r})")
        for key in ("steps", "batch", "frames", "threads", "save_every", "adapt_rank"):
            if getattr(self, key) < 1:
                raise InvalidRequestError(f"{key} must be >= 1 (got {getattr(self, key)})")
        for key in ("warmup", "workers", "weight_decay", "min_lr"):
            if getattr(self, key) < 0:
                raise InvalidRequestError(f"{key} must be >= 0 (got {getattr(self, key)})")
        if not self.lr > 0:
            raise InvalidRequestError(f"lr must be > 0 (got {self.lr})")
        if not 0 <= self.mask_ratio < 1:
            raise InvalidRequestError(f"mask_ratio must be in [0, 1) (got {self.mask_ratio})")
        if self.resolution is not None and self.resolution < 1:
            raise InvalidRequestError(f"resolution must be >= 1 (got {self.resolution})")


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_types(cfg: EncoderTrainConfig) -> None:
    """Each key's value of its declared type (a TOML string where a number belongs would
    otherwise fail later, inside the loop, with a message about comparisons)."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        kind, _, optional = f.type.partition(" | ")
        if value is None and optional == "None":
            continue
        wanted = _TYPES[kind]
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            raise InvalidRequestError(f"{f.name} must be {'a' if kind != 'int' else 'an'} {kind} (got {value!r})")


def parse_trainable(text: str) -> int | None:
    """``all`` -> None; ``last:K`` -> K."""
    if text == "all":
        return None
    if text.startswith("last:") and text[5:].isdigit() and int(text[5:]) > 0:
        return int(text[5:])
    raise InvalidRequestError(f"trainable must be 'all' or 'last:K' (got {text!r})")


def load_config(path: str | Path, overrides: dict | None = None) -> EncoderTrainConfig:
    """A TOML or YAML file (top-level keys, or grouped in tables that are merged); paths in it
    are relative to the file's folder."""
    path = Path(path)
    if not path.exists():
        raise InvalidRequestError(f"no such config file: {path}")
    if path.is_dir():
        raise InvalidRequestError(f"{path} is a folder; name a .toml or .yaml config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{path}: not a text file (a .toml or .yaml config is expected)") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raw = tomllib.loads(text)
    except Exception as e:  # both parsers' errors become one clear message
        raise InvalidRequestError(f"{path}: cannot parse config ({e})") from None
    if not isinstance(raw, dict):
        raise InvalidRequestError(f"{path}: a config is a mapping of keys to values (got a {type(raw).__name__})")
    flat: dict = {}
    for key, value in raw.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    flat.update(overrides or {})
    known = {f.name for f in fields(EncoderTrainConfig)}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise InvalidRequestError(f"{path}: unknown keys {unknown}; known: {', '.join(sorted(known))}")
    # paths are made absolute (relative ones from the config's folder) before they are stored
    # and compared on resume: the same run launched from elsewhere is the same run
    for key in ("manifest", "out", "init", "eval_manifest"):
        if isinstance(flat.get(key), str):
            flat[key] = str((path.parent / flat[key]).resolve())
    for key in ("text", "init_image"):
        if isinstance(flat.get(key), str) and (path.parent / flat[key]).exists():  # else a hub id
            flat[key] = str((path.parent / flat[key]).resolve())
    try:
        return EncoderTrainConfig(**flat)
    except TypeError as e:
        raise InvalidRequestError(f"{path}: {e}") from None


def check_inputs(cfg: EncoderTrainConfig) -> None:
    """The files a run reads exist (checked when it starts, not after training)."""
    for key in ("manifest", "eval_manifest"):
        value = getattr(cfg, key)
        if value is not None and not Path(value).is_file():
            raise InvalidRequestError(f"{key}: no manifest file at {value}")
    if cfg.init is not None:
        init = Path(cfg.init)
        if not (init / "checkpoint.pt" if init.is_dir() else init).exists():
            raise InvalidRequestError(
                f"init: no encoder checkpoint at {init}; train the stage it names first "
                "(the run whose out is that folder)"
            )
