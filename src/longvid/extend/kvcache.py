"""KV-cache precision: 16-bit (plain) or group-wise 8 / 4 / 2-bit quantized keys and values
with a short full-precision residual window (KIVI-style, as the interpolation paper uses
after ZipCache), through transformers' ``QuantizedCache``.

Backend: ``hqq`` for every width, through a subclass of transformers' hqq cache layer that
quantizes each block once (``AppendOnlyHQQLayer``). transformers also offers ``quanto`` (2 and 4 bits), but
its kernels were compiled on first use here (80 s) and it offers nothing hqq lacks.

Note what quantization changes: attention over the tokens of the current forward pass uses
their unquantized keys and values, so with one-shot prefill the first generated token is
exact. With chunked prefill each chunk attends to the dequantized earlier chunks, so the
first token already carries the quantization error (small at 8 and 4 bits; measured in the
tests and the benchmark).
"""

from __future__ import annotations

import math

import torch

from longvid.errors import InvalidRequestError

KV_BITS = (16, 8, 4, 2)
DEFAULT_GROUP = 64
# Full-precision window: KIVI keeps 128 recent tokens; longvid keeps 1,024 and quantizes
# whole 1,024-token blocks, because hqq's per-call cost made 128-token blocks 5x slower again
# on CPU (8k-token chunked prefill: 283 s with 128, 55 s with 1,024, 12 s unquantized).
DEFAULT_RESIDUAL = 1024


def kv_backend(bits: int) -> str:
    """Which implementation serves a bit width (named in reports)."""
    if bits not in KV_BITS:
        raise InvalidRequestError(f"kv bits must be one of {', '.join(map(str, KV_BITS))} (got {bits})")
    return "dynamic (unquantized)" if bits == 16 else "hqq"


def make_cache(bits: int, config, group: int = DEFAULT_GROUP, residual: int = DEFAULT_RESIDUAL):
    """A transformers cache for ``bits``: DynamicCache at 16, QuantizedCache(hqq) below."""
    from transformers import DynamicCache, QuantizedCache

    kv_backend(bits)
    if bits == 16:
        return DynamicCache(config=config)
    group = quant_group(config, bits, group)
    try:
        import hqq  # noqa: F401
    except ImportError as e:
        raise InvalidRequestError("--kv-bits below 16 needs the hqq package (pip install hqq)") from e
    return QuantizedCache(
        backend="hqq", config=config, nbits=bits, q_group_size=group, residual_length=residual, axis_key=1, axis_value=1
    )


def quant_group(config, bits: int, group: int = DEFAULT_GROUP) -> int:
    """The group size hqq can use: it groups consecutive elements along head_dim (so a group
    divides head_dim) and packs 8/bits values per byte across groups (so the groups of one
    token, kv_heads x head_dim / group, must be a multiple of that). Real models (head_dim
    128) keep 64; tiny test models get smaller groups."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    per_token = config.num_key_value_heads * head_dim
    group = math.gcd(group, head_dim)
    while group > 1 and (per_token // group) % (8 // bits):
        group //= 2
    return group


def _tensor_bytes(obj) -> int:
    """Bytes of every tensor inside ``obj`` (tensors, tuples, lists, dicts), counted once."""
    seen: set[int] = set()

    def walk(o) -> int:
        if isinstance(o, torch.Tensor):
            key = o.untyped_storage().data_ptr() if o.numel() else id(o)
            if key in seen:
                return 0
            seen.add(key)
            return o.numel() * o.element_size()
        if isinstance(o, dict):
            return sum(walk(v) for v in o.values())
        if isinstance(o, list | tuple):
            return sum(walk(v) for v in o)
        inner = getattr(o, "__dict__", None)
        return walk(inner) if isinstance(inner, dict) and hasattr(o, "_data") else 0

    return walk(obj)


def cache_bytes(cache) -> int:
    """Measured bytes held by a cache: quantized payloads, scales and zeros, residual window."""
    total = 0
    for layer in cache.layers:
        for name in ("keys", "values", "_quantized_keys", "_quantized_values", "_blocks"):
            total += _tensor_bytes(getattr(layer, name, None))
    return total


def kv_bytes(
    layers: int,
    kv_heads: int,
    head_dim: int,
    tokens: int,
    bits: int = 16,
    group: int = DEFAULT_GROUP,
    scale_bytes: int = 2,
) -> int:
    """Analytic KV-cache size: 2 · layers · kv_heads · head_dim · tokens · bits/8, plus a
    scale and a zero per group when quantized (stored in the compute dtype: 2 bytes in
    bf16, 4 in fp32)."""
    elements = 2 * layers * kv_heads * head_dim * tokens
    if bits == 16:
        return elements * 2
    return elements * bits // 8 + (elements // group) * 2 * scale_bytes
