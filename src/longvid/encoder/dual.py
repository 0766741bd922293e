"""The dual encoder trained contrastively: video tower + text tower + loss in one module,
built new or from an earlier stage's checkpoint, and loaded back for use."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from longvid.encoder.adapt import adapter_parameters, apply_adapters, merge_lora
from longvid.encoder.checkpoints import load_checkpoint
from longvid.encoder.config import EncoderTrainConfig, parse_trainable
from longvid.encoder.data import order_swapped
from longvid.encoder.loss import MAX_LOGIT_SCALE, ContrastiveLoss
from longvid.encoder.model import VideoViT, VideoViTConfig, config_for, trainable_last
from longvid.encoder.text import TextTower
from longvid.errors import InvalidRequestError, ModelLoadError


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


def dual_encoder(
    video_cfg: VideoViTConfig, cfg: EncoderTrainConfig, state: dict | None, source, video: VideoViT | None = None
) -> DualEncoder:
    """VideoViT + text tower (projection to the video's embedding size) + loss, with a
    checkpoint's weights when ``state`` is given (the frozen text encoder is never in it)."""
    text = TextTower.from_pretrained(cfg.text, embed_dim=video_cfg.embed_dim)
    if cfg.text_trainable == "head":
        text.freeze_encoder()
    model = DualEncoder(video if video is not None else VideoViT(video_cfg), text, ContrastiveLoss())
    if state is not None:  # its own adapters first, so that their weights have somewhere to go
        saved = state["config"]
        apply_adapters(model.video, saved.get("adapt", "none"), saved.get("adapt_rank", 8))
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        if unexpected or any(not k.startswith("text.encoder.") for k in missing):
            raise ModelLoadError(f"{source}: weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


def build(cfg: EncoderTrainConfig) -> DualEncoder:
    """The dual encoder for ``cfg``: new, or from an earlier stage's checkpoint (``init``)."""
    if cfg.init is None and cfg.init_image is not None:  # a pretrained image tower's weights
        from longvid.encoder.towers import from_image_tower

        video = from_image_tower(cfg.init_image, frames=max(cfg.frames, 2), inflate=cfg.inflate, backbone=cfg.backbone)
        return _adapted(dual_encoder(video.config, cfg, None, None, video=video), cfg)
    if cfg.init is None:
        overrides = {"backbone": cfg.backbone, "pooling": cfg.pooling, "frames": max(cfg.frames, 2)}
        if cfg.resolution is not None:
            overrides["image_size"] = cfg.resolution
        if cfg.tubes:
            overrides["tubes"] = True
        for key in ("tubelet", "patch"):
            if getattr(cfg, key) is not None:
                overrides[key] = getattr(cfg, key)
        return _adapted(dual_encoder(config_for(cfg.size, **overrides), cfg, None, None), cfg)
    state = load_checkpoint(cfg.init)
    if state["config"].get("adapt") == "mlp":
        raise InvalidRequestError(f"init {cfg.init} has MLP adapters, which cannot be merged: start from its own init")
    video_cfg = VideoViTConfig(**state["video_config"])
    if (video_cfg.backbone, video_cfg.pooling) != (cfg.backbone, cfg.pooling):
        warnings.warn(f"init {cfg.init} is a {video_cfg.backbone} model: its backbone is kept", stacklevel=2)
    model = dual_encoder(video_cfg, cfg, state, cfg.init)
    merge_lora(model.video)  # an earlier stage's LoRA becomes part of the weights this stage starts from
    if state["config"]["stage"] == "image" and cfg.stage != "image":
        model.video.inflate(cfg.inflate)
    if cfg.stage != "image" and cfg.frames != model.video.config.frames:
        model.video.resize_temporal(cfg.frames)
    for p in model.parameters():  # FSDP shards only contiguous parameters
        if not p.is_contiguous():
            p.data = p.data.contiguous()
    return _adapted(model, cfg)


def _adapted(model: DualEncoder, cfg: EncoderTrainConfig) -> DualEncoder:
    apply_adapters(model.video, cfg.adapt, cfg.adapt_rank)
    return model


def set_trainable(model: DualEncoder, cfg: EncoderTrainConfig) -> None:
    """requires_grad per ``trainable``; the input path the stage does not use is frozen."""
    video = model.video
    trainable_last(video, parse_trainable(cfg.trainable))
    unused = video.tubelet if cfg.stage == "image" else video.patch  # the other input path
    for p in unused.parameters():
        p.requires_grad_(False)
    if cfg.adapt != "none":  # only the adapters and the embedding head
        for p in video.parameters():
            p.requires_grad_(False)
        for p in [*adapter_parameters(video), *video.head.parameters()]:
            p.requires_grad_(True)


def load_encoder(path: str | Path) -> tuple[DualEncoder, EncoderTrainConfig]:
    """A trained dual encoder (eval mode) from a checkpoint file or its folder."""
    state = load_checkpoint(path)
    cfg = EncoderTrainConfig(**{**state["config"], "init": None})
    model = dual_encoder(VideoViTConfig(**state["video_config"]), cfg, state, path)
    return model.eval(), cfg


def temperature(model: DualEncoder) -> float:
    scale = model.loss.logit_scale.detach()
    if hasattr(scale, "full_tensor"):  # an FSDP-sharded DTensor
        scale = scale.full_tensor()
    return float(1 / scale.exp().clamp(max=MAX_LOGIT_SCALE)[0])
