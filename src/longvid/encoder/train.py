"""Contrastive video-text training of a VideoViT, in stages (seed 001's recipe).

    longvid encoder train CONFIG.toml [--set key=value ...]
    torchrun --nproc_per_node=N -m longvid encoder train CONFIG.toml     # DDP (FSDP: distributed = "fsdp")

Stages set the defaults; any key in the config overrides them:

- ``image``: the middle frame of every clip with its caption, through the 2D patch path;
  mask ratio 0.5 (FLIP), all layers train.
- ``short``: 16 frames, tubelets, mask ratio 0.75, all layers. Starting from an ``image``
  checkpoint (``init``) the 3D kernel is inflated from the 2D one first (``inflate``).
- ``long``: 64 frames (64-256), mask ratio 0.75, only the last 4 blocks train
  (``trainable = "last:4"``); temporal embeddings are interpolated to the new length.

The text tower is any transformers encoder (default: the pretrained all-MiniLM-L6-v2); by
default only its projection trains (``text_trainable = "head"``), so each caption's encoder
features are computed once. Every step is seeded by (seed, step, rank) and each rank reads a
fixed slice of a seeded permutation per epoch, so a resumed run repeats the uninterrupted
run's loss sequence exactly. Checkpoints (``OUT/checkpoint.pt``) are written to a temporary
file and renamed; ``OUT/history.jsonl`` logs loss, learning rate and clips/s per step.
"""

from __future__ import annotations

import json
import math
import os
import time
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from longvid.encoder.data import Clip, order_swapped, read_manifest
from longvid.encoder.loss import MAX_LOGIT_SCALE, ContrastiveLoss
from longvid.encoder.model import VideoViT, VideoViTConfig, config_for, trainable_last
from longvid.encoder.text import TextTower
from longvid.errors import InvalidRequestError, LongvidError, ModelLoadError

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
    init: str | None = None  # checkpoint of an earlier stage
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
        if self.steps < 1 or self.batch < 1:
            raise InvalidRequestError("steps and batch must be >= 1")


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
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raw = tomllib.loads(text)
    except Exception as e:  # both parsers' errors become one clear message
        raise InvalidRequestError(f"{path}: cannot parse config ({e})") from None
    flat: dict = {}
    for key, value in raw.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    flat.update(overrides or {})
    known = {f.name for f in fields(EncoderTrainConfig)}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise InvalidRequestError(f"{path}: unknown keys {unknown}; known: {', '.join(sorted(known))}")
    for key in ("manifest", "out", "init", "text", "eval_manifest"):
        if flat.get(key) is not None and not Path(flat[key]).is_absolute():
            flat[key] = str(path.parent / flat[key])
    try:
        return EncoderTrainConfig(**flat)
    except TypeError as e:
        raise InvalidRequestError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------- data


def clip_timestamps(clip: Clip, duration: float, frames: int) -> np.ndarray:
    """Centres of ``frames`` equal slices of the clip's window (the whole video by default)."""
    start = clip.start or 0.0
    end = min(clip.end if clip.end is not None else duration, duration)
    if end <= start:
        raise InvalidRequestError(f"clip window {start:.2f}-{end:.2f}s is outside the video ({duration:.2f}s)")
    return start + (np.arange(frames) + 0.5) * (end - start) / frames


def load_pixels(clip: Clip, frames: int, resolution: int) -> torch.Tensor:
    """(frames, 3, r, r) in [-1, 1] through longvid's sampler; frames == 1: (3, r, r), the middle frame."""
    from longvid.video import FrameReader

    reader = FrameReader(clip.video)
    times = clip_timestamps(clip, reader.index.duration, frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a clip shorter than ``frames`` repeats frames: intended
        array = reader.sample(timestamps=times.tolist(), size=(resolution, resolution)).array
    x = torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x[0] if frames == 1 else x


class ClipDataset(torch.utils.data.Dataset):
    """Decoded clips; a clip that fails to decode is reported and replaced by the next one
    (so every batch is full: ranks all-gather equal shapes)."""

    def __init__(self, clips: list[Clip], frames: int, resolution: int, cache: bool = False) -> None:
        self.clips, self.frames, self.resolution = clips, frames, resolution
        self.cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        if self.cache is None:
            return self._load(i)
        if i in self.cache:
            return self.cache[i]
        item = self._load(i)
        self.cache[i] = {**item, "failed": []}  # failures are reported the first time only
        return item

    def _load(self, i: int) -> dict:
        failed = []
        for k in range(min(len(self.clips), 20)):
            clip = self.clips[(i + k) % len(self.clips)]
            try:
                return {"pixels": load_pixels(clip, self.frames, self.resolution), "caption": clip.caption,
                        "failed": failed}  # fmt: skip
            except (LongvidError, OSError, ValueError) as e:
                failed.append((str(clip.video), str(e).splitlines()[0]))
        raise LongvidError(f"20 clips in a row failed to decode, the last: {failed[-1]}")


def collate(items: list[dict]) -> dict:
    return {
        "pixels": torch.stack([it["pixels"] for it in items]),
        "captions": [it["caption"] for it in items],
        "failed": [f for it in items for f in it["failed"]],
    }


class StepSampler(torch.utils.data.Sampler):
    """Clip indices for steps ``start``, ``start + 1``, ...: epoch e is the permutation seeded
    by (seed, e); step s on rank r takes positions [(s * world + r) * batch, ... + batch) of
    the endless concatenation. Resuming at step s reads exactly what the first run read."""

    def __init__(self, n: int, batch: int, seed: int, start: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.batch, self.seed, self.start, self.rank, self.world = n, batch, seed, start, rank, world

    def __iter__(self) -> Iterator[int]:
        step = self.start
        while True:
            first = (step * self.world + self.rank) * self.batch
            for pos in range(first, first + self.batch):
                epoch, offset = divmod(pos, self.n)
                yield int(np.random.default_rng([self.seed, epoch]).permutation(self.n)[offset])
            step += 1


# ----------------------------------------------------------------------------- model


class DualEncoder(nn.Module):
    """Video tower + text tower + loss in one module (so DDP/FSDP wrap one thing)."""

    def __init__(self, video: VideoViT, text: TextTower, loss: ContrastiveLoss) -> None:
        super().__init__()
        self.video, self.text, self.loss = video, text, loss

    def forward(
        self, pixels: torch.Tensor, captions: list[str], mask_ratio: float, generator=None, order_negatives=False
    ) -> torch.Tensor:
        video, text = self.video(pixels, mask_ratio, generator), self.text(captions)
        if not order_negatives:
            return self.loss(video, text)
        swapped = [order_swapped(c) for c in captions]
        valid = torch.tensor([s != c for s, c in zip(swapped, captions, strict=True)], device=video.device)
        return self.loss(video, text, self.text(swapped), valid)


def dual_encoder(video_cfg: VideoViTConfig, cfg: EncoderTrainConfig, state: dict | None, source) -> DualEncoder:
    """VideoViT + text tower (projection to the video's embedding size) + loss, with a
    checkpoint's weights when ``state`` is given (the frozen text encoder is never in it)."""
    text = TextTower.from_pretrained(cfg.text, embed_dim=video_cfg.embed_dim)
    if cfg.text_trainable == "head":
        text.freeze_encoder()
    model = DualEncoder(VideoViT(video_cfg), text, ContrastiveLoss())
    if state is not None:
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        if unexpected or any(not k.startswith("text.encoder.") for k in missing):
            raise ModelLoadError(f"{source}: weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


def build(cfg: EncoderTrainConfig) -> DualEncoder:
    """The dual encoder for ``cfg``: new, or from an earlier stage's checkpoint (``init``)."""
    if cfg.init is None:
        overrides = {"backbone": cfg.backbone, "pooling": cfg.pooling, "frames": max(cfg.frames, 2)}
        if cfg.resolution is not None:
            overrides["image_size"] = cfg.resolution
        return dual_encoder(config_for(cfg.size, **overrides), cfg, None, None)
    state = load_checkpoint(cfg.init)
    video_cfg = VideoViTConfig(**state["video_config"])
    if (video_cfg.backbone, video_cfg.pooling) != (cfg.backbone, cfg.pooling):
        warnings.warn(f"init {cfg.init} is a {video_cfg.backbone} model: its backbone is kept", stacklevel=2)
    model = dual_encoder(video_cfg, cfg, state, cfg.init)
    if state["config"]["stage"] == "image" and cfg.stage != "image":
        model.video.inflate(cfg.inflate)
    if cfg.stage != "image" and cfg.frames != model.video.config.frames:
        model.video.resize_temporal(cfg.frames)
    return model


def set_trainable(model: DualEncoder, cfg: EncoderTrainConfig) -> None:
    """requires_grad per ``trainable``; the input path the stage does not use is frozen."""
    video = model.video
    trainable_last(video, parse_trainable(cfg.trainable))
    unused = video.tubelet if cfg.stage == "image" else video.patch  # the other input path
    for p in unused.parameters():
        p.requires_grad_(False)


def lr_at(cfg: EncoderTrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- checkpoints


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    path = path / "checkpoint.pt" if path.is_dir() else path
    if not path.exists():
        raise ModelLoadError(f"no encoder checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ModelLoadError(f"{path}: not a longvid encoder checkpoint ({e})") from None


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary name, then rename: a kill mid-write leaves the old file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- distributed


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """From torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    if world == 1:
        return Dist(device=device)
    import torch.distributed as dist

    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), device)


def wrap(model: DualEncoder, cfg: EncoderTrainConfig, env: Dist) -> nn.Module:
    if env.world == 1:
        return model
    if cfg.distributed == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.video.blocks:
            fully_shard(block)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)


def full_state(model: nn.Module, optimizer, cfg: EncoderTrainConfig) -> tuple[dict, dict]:
    """Whole (unsharded) model and optimizer states on CPU, whichever wrapper trains."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model_state, optim_state = get_state_dict(
        model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if cfg.text_trainable == "head":  # the frozen encoder is reloaded from ``text``, not copied
        model_state = {k: v for k, v in model_state.items() if not k.startswith("text.encoder.")}
    return model_state, optim_state


def restore_state(model: nn.Module, optimizer, state: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(
        model,
        optimizer,
        model_state_dict=state["model"],
        optim_state_dict=state["optimizer"],
        options=StateDictOptions(full_state_dict=True, strict=False),
    )


# ----------------------------------------------------------------------------- loop


def train(cfg: EncoderTrainConfig, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train (or resume from ``OUT/checkpoint.pt``) and return the final record.
    ``stop_after``: leave after that many steps of this run, as a killed job would (tests)."""
    torch.set_num_threads(cfg.threads)
    env = init_distributed()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    clips, bad = read_manifest(cfg.manifest)
    if env.main and bad:
        (out / "bad_rows.txt").write_text("".join(f"{cfg.manifest}:{n}: {why}\n" for n, why in bad))
        warnings.warn(f"{cfg.manifest}: {len(bad)} bad rows skipped (see {out / 'bad_rows.txt'})", stacklevel=2)
    if len(clips) < cfg.batch:
        raise InvalidRequestError(f"{cfg.manifest}: {len(clips)} usable clips, fewer than one batch ({cfg.batch})")

    torch.manual_seed(cfg.seed)  # the initial weights (the same on every rank)
    model = build(cfg)
    model.video.grad_checkpointing = cfg.grad_checkpointing
    set_trainable(model, cfg)
    model.to(env.device)
    resume = out / "checkpoint.pt"
    state = load_checkpoint(resume) if resume.exists() else None
    if state is not None:
        changed = sorted(
            k for k, v in asdict(cfg).items() if k not in RESUME_MAY_CHANGE and state["config"].get(k) != v
        )
        if changed:
            raise InvalidRequestError(
                f"{resume} was written by a different config (changed: {', '.join(changed)}); "
                "use another 'out' folder or delete the checkpoint"
            )
        if state["video_config"] != model.video.to_dict():  # e.g. a longvid version with other defaults
            raise InvalidRequestError(f"{resume} holds a different VideoViT ({state['video_config']}); not resuming")
    wrapped = wrap(model, cfg, env)
    # collected after wrapping: FSDP replaces the parameters with sharded ones
    params = [p for p in wrapped.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    start = 0
    if state is not None:
        restore_state(wrapped, optimizer, state)
        start = state["step"]
    history_path = out / "history.jsonl"
    if env.main:  # drop log lines past the checkpoint: the resumed run writes them again
        kept = [ln for ln in _read_lines(history_path) if json.loads(ln)["step"] <= start]
        history_path.write_text("".join(ln + "\n" for ln in kept))

    resolution = model.video.config.image_size
    loader = torch.utils.data.DataLoader(
        ClipDataset(clips, cfg.frames, resolution, cache=cfg.cache_decoded),
        batch_size=cfg.batch,
        sampler=StepSampler(len(clips), cfg.batch, cfg.seed, start, env.rank, env.world),
        num_workers=0 if cfg.cache_decoded else cfg.workers,  # worker processes would each hold a cache
        collate_fn=collate,
        persistent_workers=False,
    )
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if env.device.type == "cuda" else "fp32")
    bar = None
    if progress and env.main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"encoder {cfg.stage}", unit="step")
    wrapped.train()
    record: dict = {"step": start}
    reported: set[str] = set()
    batches = iter(loader)
    step = start
    while step < cfg.steps and (stop_after is None or step - start < stop_after):
        t0 = time.perf_counter()
        batch = next(batches)
        for path, why in batch["failed"]:
            if path not in reported and env.main:
                reported.add(path)
                warnings.warn(f"{path}: cannot decode, skipped ({why})", stacklevel=2)
        torch.manual_seed(_step_seed(cfg.seed, step, env.rank))  # dropout etc.: same on resume
        generator = torch.Generator(device=env.device).manual_seed(_step_seed(cfg.seed, step, env.rank))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, step)
        pixels = batch["pixels"].to(env.device, non_blocking=True)
        with torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = wrapped(pixels, batch["captions"], cfg.mask_ratio, generator, cfg.order_negatives)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_value = _mean_over_ranks(loss.detach(), env)
        seconds = time.perf_counter() - t0
        record = {"step": step, "loss": loss_value, "lr": lr_at(cfg, step - 1),
                  "clips_per_s": round(cfg.batch * env.world / seconds, 2),
                  "temperature": _temperature(model)}  # fmt: skip
        if env.main:
            with history_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", clips_s=f"{record['clips_per_s']:.1f}")
        if step % cfg.save_every == 0 or step == cfg.steps:
            _save(wrapped, model, optimizer, cfg, step, env)
    if bar is not None:
        bar.close()
    if step == cfg.steps and cfg.eval_manifest and env.main:
        from longvid.encoder.evaluate import evaluate_manifest

        record["eval"] = evaluate_manifest(model, cfg.eval_manifest, cfg.frames, batch=cfg.batch, progress=progress)
        (out / "eval.json").write_text(json.dumps(record["eval"], indent=1))
    return record


def _save(wrapped, model: DualEncoder, optimizer, cfg: EncoderTrainConfig, step: int, env: Dist) -> None:
    model_state, optim_state = full_state(wrapped, optimizer, cfg)  # collective under FSDP
    if env.main:
        state = {"model": model_state, "optimizer": optim_state, "step": step, "config": asdict(cfg)}
        state["video_config"] = model.video.to_dict()
        save_atomic(state, Path(cfg.out) / "checkpoint.pt")
    if env.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _temperature(model: DualEncoder) -> float:
    scale = model.loss.logit_scale.detach()
    if hasattr(scale, "full_tensor"):  # an FSDP-sharded DTensor
        scale = scale.full_tensor()
    return float(1 / scale.exp().clamp(max=MAX_LOGIT_SCALE)[0])


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 4099 + rank


def _mean_over_ranks(x: torch.Tensor, env: Dist) -> float:
    if env.world > 1:
        import torch.distributed as dist

        x = x.clone()
        dist.all_reduce(x)
        x /= env.world
    return float(x)


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [ln for ln in path.read_text().splitlines() if ln.strip() and ln.rstrip().endswith("}")]


def load_encoder(path: str | Path) -> tuple[DualEncoder, EncoderTrainConfig]:
    """A trained dual encoder (eval mode) from a checkpoint file or its folder."""
    state = load_checkpoint(path)
    cfg = EncoderTrainConfig(**{**state["config"], "init": None})
    model = dual_encoder(VideoViTConfig(**state["video_config"]), cfg, state, path)
    return model.eval(), cfg
