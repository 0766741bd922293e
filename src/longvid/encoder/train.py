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
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from longvid.encoder.checkpoints import full_state, load_checkpoint, restore_state, save_atomic
from longvid.encoder.config import RESUME_MAY_CHANGE, EncoderTrainConfig, check_inputs, load_config
from longvid.encoder.data import ClipDataset, StepSampler, collate, load_pixels, read_manifest
from longvid.encoder.distributed import Dist, barrier, init_distributed, mean_over_ranks, wrap
from longvid.encoder.dual import DualEncoder, build, load_encoder, set_trainable, temperature
from longvid.encoder.evaluate import evaluate_manifest
from longvid.errors import InvalidRequestError
from longvid.lr import warmup_cosine
from longvid.progress import bar

# the entry points other modules and scripts import from here
__all__ = ["EncoderTrainConfig", "StepSampler", "load_config", "load_encoder", "load_pixels", "lr_at", "train"]


def lr_at(cfg: EncoderTrainConfig, step: int) -> float:
    return warmup_cosine(step, peak=cfg.lr, total=cfg.steps, warmup=cfg.warmup, floor=cfg.min_lr, decay=cfg.schedule)


def train(cfg: EncoderTrainConfig, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train (or resume from ``OUT/checkpoint.pt``) and return the final record.
    ``stop_after``: leave after that many steps of this run, as a killed job would (tests)."""
    check_inputs(cfg)
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
    if env.main:
        _warn_if_clips_are_short(clips[0], cfg.frames)

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
    wrapped = wrap(model, cfg.distributed, env)
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
    meter = bar(progress and env.main, cfg.steps, f"encoder {cfg.stage}", "step", initial=start, leave=True)
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
        loss_value = mean_over_ranks(loss.detach(), env)
        seconds = time.perf_counter() - t0
        record = {"step": step, "loss": loss_value, "lr": lr_at(cfg, step - 1),
                  "clips_per_s": round(cfg.batch * env.world / seconds, 2),
                  "temperature": temperature(model)}  # fmt: skip
        if env.main:
            with history_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        meter.update(1)
        meter.set_postfix(loss=f"{loss_value:.4f}", clips_s=f"{record['clips_per_s']:.1f}")
        if step % cfg.save_every == 0 or step == cfg.steps:
            _save(wrapped, model, optimizer, cfg, step, env)
    meter.close()
    if step == cfg.steps and cfg.eval_manifest and env.main:
        record["eval"] = evaluate_manifest(model, cfg.eval_manifest, cfg.frames, batch=cfg.batch, progress=progress)
        (out / "eval.json").write_text(json.dumps(record["eval"], indent=1))
    return record


def _save(wrapped, model: DualEncoder, optimizer, cfg: EncoderTrainConfig, step: int, env: Dist) -> None:
    model_state, optim_state = full_state(wrapped, optimizer, cfg.text_trainable == "head")  # collective under FSDP
    if env.main:
        state = {"model": model_state, "optimizer": optim_state, "step": step, "config": asdict(cfg)}
        state["video_config"] = model.video.to_dict()
        save_atomic(state, Path(cfg.out) / "checkpoint.pt")
    barrier(env)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 4099 + rank


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [ln for ln in path.read_text().splitlines() if ln.strip() and ln.rstrip().endswith("}")]


def _warn_if_clips_are_short(clip, frames: int) -> None:
    """Sampling more frames than a clip has repeats frames: say so once, from the first clip."""
    from longvid.video import probe

    have = probe(clip.video).frame_count
    if clip.start is None and clip.end is None and have < frames:
        warnings.warn(
            f"{clip.video} has {have} frames and the run reads {frames} per clip: frames repeat "
            "(write clips with at least that many frames, e.g. encoder synth --frames)",
            stacklevel=3,
        )
