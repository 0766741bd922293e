"""Parameter-efficient image-to-video adaptation (the alternatives the video-first recipe's
memory study weighs against masking): LoRA on the attention projections through ``peft``, or
a bottleneck MLP adapter after each block (Houlsby-style; ``peft`` has none), zero-initialised
so an adapted model starts as the model it adapts. Only adapter weights (and the embedding
head) train; ``merge_lora`` folds LoRA into the weights for export (MLP adapters, being
nonlinear, stay modules)."""

from __future__ import annotations

import torch
from torch import nn

from longvid.encoder.model import VideoViT
from longvid.errors import InvalidRequestError

ADAPT_MODES = ("none", "lora", "mlp")
LORA_TARGETS = ["qkv", "proj"]  # each block's attention projections


class MLPAdapter(nn.Module):
    """x + up(gelu(down(x))), up zero-initialised: the identity at the start."""

    def __init__(self, width: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(width, rank)
        self.up = nn.Linear(rank, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(nn.functional.gelu(self.down(x)))


def apply_adapters(video: VideoViT, kind: str, rank: int) -> None:
    """Add ``kind`` adapters of ``rank`` to ``video`` in place (``none``: nothing)."""
    if kind not in ADAPT_MODES:
        raise InvalidRequestError(f"unknown adapt {kind!r}; choose from {', '.join(ADAPT_MODES)}")
    if rank < 1:
        raise InvalidRequestError(f"adapt_rank must be >= 1 (got {rank})")
    if kind == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        inject_adapter_in_model(
            LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=LORA_TARGETS, lora_dropout=0.0), video
        )
    elif kind == "mlp":
        for block in video.blocks:
            block.adapter = MLPAdapter(video.config.width, rank)


def adapter_parameters(video: VideoViT) -> list[nn.Parameter]:
    return [p for n, p in video.named_parameters() if "lora_" in n or ".adapter." in n]


@torch.no_grad()
def merge_lora(video: VideoViT) -> None:
    """Fold LoRA into the projections' weights and drop the LoRA modules (outputs unchanged)."""
    from peft.tuners.lora import Linear as LoraLinear

    for block in video.blocks:
        for name in LORA_TARGETS:
            layer = getattr(block, name)
            if isinstance(layer, LoraLinear):
                layer.merge()
                setattr(block, name, layer.get_base_layer())
