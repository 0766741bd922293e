"""Encoder checkpoints: read, written atomically, and the whole (unsharded) training state
gathered or restored under any wrapper (plain, DDP, FSDP)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from longvid.errors import ModelLoadError


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


def full_state(model: nn.Module, optimizer, frozen_text: bool) -> tuple[dict, dict]:
    """Whole (unsharded) model and optimizer states on CPU, whichever wrapper trains."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model_state, optim_state = get_state_dict(
        model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if frozen_text:  # the frozen encoder is reloaded from ``text``, not copied
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
