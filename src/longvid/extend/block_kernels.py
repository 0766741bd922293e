"""One part of the keys at a time: softmax attention that returns its output with the
log-sum-exp of its scores, so parts merge exactly (``merge``), whatever kernel made them.

- ``fused`` (default): a fused kernel per part, scores never materialized in full:
  on CPU ``aten._scaled_dot_product_flash_attention_for_cpu`` (any dtype, with a mask); on CUDA
  ``aten._scaled_dot_product_efficient_attention`` with ``compute_log_sumexp`` (fp32, fp16,
  bf16) for the parts without a mask. The public ``scaled_dot_product_attention`` does not
  return the log-sum-exp, which merging needs. A part a kernel refuses (a shape, a dtype, a
  device without one) and CUDA's masked part (the queries' own keys: one chunk square) run
  ``online``.
- ``online``: plain torch in fp32, the reference the tests hold ``fused`` to.
"""

from __future__ import annotations

import math
import warnings

import torch

KERNELS = ("fused", "online")
_refused: set[str] = set()


def attend_part(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, allowed: torch.Tensor | None, kernel: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of ``q`` (b, h, rows, d) over keys/values (b, h, n, d); ``allowed`` (rows, n)
    bool or None (all). Returns (output (b, h, rows, d), log-sum-exp (b, h, rows, 1)), fp32.
    A row allowed no key here (a chunk's early queries against a later block of their own
    chunk) gets output 0 and log-sum-exp -inf: nothing, once merged."""
    # contiguous: a dequantized block is a strided view, and the CPU kernel is ten times
    # slower on one (measured: bench/prefill_speed.py)
    fused_kv = (k.to(q.dtype).contiguous(), v.to(q.dtype).contiguous()) if kernel == "fused" else None
    got = _fused(q, *fused_kv, scale, allowed) if fused_kv is not None else None
    out, lse = got if got is not None else _online(q, k, v, scale, allowed)
    if allowed is not None:
        empty = ~allowed.any(dim=-1, keepdim=True)
        if bool(empty.any()):
            out, lse = out.masked_fill(empty, 0.0), lse.masked_fill(empty, -math.inf)
    return out, lse


def _fused(q, k, v, scale, allowed):
    device = q.device.type
    try:
        if device == "cpu":
            bias = None
            if allowed is not None:
                bias = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill_(~allowed, -math.inf)
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=bias, scale=scale)
        elif device == "cuda" and allowed is None:
            out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True, scale=scale)[:2]
            lse = lse[..., : q.shape[-2]]  # the kernel pads its log-sum-exp rows
        else:
            return None
    except (RuntimeError, NotImplementedError) as e:
        key = f"{device}/{q.dtype}/{q.shape[-1]}"
        if key not in _refused:
            _refused.add(key)
            warnings.warn(f"fused block attention refused ({key}: {e}); using the online kernel", stacklevel=3)
        return None
    return out.float(), lse.float().unsqueeze(-1)


def _online(q, k, v, scale, allowed):
    scores = (q.float() * scale) @ k.float().transpose(-1, -2)
    if allowed is not None:
        scores.masked_fill_(~allowed, -math.inf)
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    return torch.exp(scores - lse) @ v.float(), lse


def merge(
    running: tuple[torch.Tensor, torch.Tensor] | None, part: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two softmax attentions over disjoint keys, as one: outputs weighted by their shares of
    the total exp-sum (log-sum-exps add in log space)."""
    if running is None:
        return part
    (out_a, lse_a), (out_b, lse_b) = running, part
    lse = torch.logaddexp(lse_a, lse_b)
    return out_a * torch.exp(lse_a - lse) + out_b * torch.exp(lse_b - lse), lse
