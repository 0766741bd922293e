"""Processes under torchrun: rank, world and device from the environment, the model wrapped
for DDP or FSDP, values averaged over ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn


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


def wrap(model: nn.Module, mode: str, env: Dist) -> nn.Module:
    if env.world == 1:
        return model
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.video.blocks:
            fully_shard(block)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)


def mean_over_ranks(x: torch.Tensor, env: Dist) -> float:
    if env.world > 1:
        import torch.distributed as dist

        x = x.clone()
        dist.all_reduce(x)
        x /= env.world
    return float(x)


def barrier(env: Dist) -> None:
    if env.world > 1:
        import torch.distributed as dist

        dist.barrier()
