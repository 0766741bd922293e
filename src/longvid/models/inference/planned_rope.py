"""A request's RoPE frequencies, reached through the calling context, never written onto the
shared model: the language model's rotary module (its class wrapped once) reads ``inv_freq``
and ``attention_scaling`` from the request running in this thread first (``rope_override``),
so concurrent requests on one model each get theirs (tests/test_concurrency.py)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from longvid.extend.rope import RopePlan

# The RoPE frequencies of the request running in this context: (rotary module, inv_freq,
# attention factor). The language model's rotary module reads them through ``_PlannedRotary``
# instead of having its buffer swapped, so concurrent requests on one model each get theirs.
_PLAN: contextvars.ContextVar[tuple[torch.nn.Module, torch.Tensor, float] | None] = contextvars.ContextVar(
    "longvid_rope_plan", default=None
)
_ROTARY_CLASSES: dict[type, type] = {}
_ROTARY_LOCK = threading.Lock()


def _planned(rotary: torch.nn.Module, name: str):
    plan = _PLAN.get()
    if plan is not None and plan[0] is rotary:
        return plan[1] if name == "inv_freq" else plan[2]
    return rotary._buffers["inv_freq"] if name == "inv_freq" else rotary.__dict__["attention_scaling"]


def _set_scaling(rotary: torch.nn.Module, value: float) -> None:
    rotary.__dict__["attention_scaling"] = value


def _planned_class(cls: type) -> type:
    """``cls`` whose ``inv_freq`` and ``attention_scaling`` read the calling context's plan
    first (transformers' rotary modules compute cos/sin from exactly these two attributes)."""
    if cls not in _ROTARY_CLASSES:
        _ROTARY_CLASSES[cls] = type(
            cls.__name__,
            (cls,),
            {
                "inv_freq": property(lambda self: _planned(self, "inv_freq")),
                "attention_scaling": property(lambda self: _planned(self, "attention_scaling"), _set_scaling),
                "__module__": cls.__module__,
                "_longvid_planned": True,
            },
        )
    return _ROTARY_CLASSES[cls]


def install_planned_rope(rotary: torch.nn.Module) -> None:
    """Let ``rotary`` take a request's frequencies from the calling context (idempotent; the
    module is changed once, never per request; outside a request it behaves as before)."""
    with _ROTARY_LOCK:
        if getattr(rotary, "_longvid_planned", False):
            return
        scaling = rotary.__dict__.pop("attention_scaling", 1.0)
        rotary.__class__ = _planned_class(type(rotary))
        rotary.__dict__["attention_scaling"] = scaling


@contextmanager
def rope_override(rotary: torch.nn.Module, plan: RopePlan) -> Iterator[None]:
    """Within (this thread / context only): ``rotary`` uses the plan's frequencies and cos/sin
    factor. The shared module is not written to."""
    install_planned_rope(rotary)
    if plan.inv_freq is None:
        token = _PLAN.set(None)
    else:
        own = rotary._buffers["inv_freq"]
        token = _PLAN.set((rotary, plan.inv_freq.to(device=own.device, dtype=own.dtype), plan.attention_factor))
    try:
        yield
    finally:
        _PLAN.reset(token)
