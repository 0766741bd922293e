"""Attention over a ``BlockKVCache``, block by block, and how a language model is routed to it.

``install_blockwise`` registers one attention function with transformers and points a model's
text config at it, once: ``dispatch_attention`` attends blockwise over the cache that the
calling context made active (``attend_blockwise``), and otherwise runs the model's own
attention unchanged. Which cache, and which per-block kernel (``block_kernel``), are context
variables: concurrent requests on one model (threads) never see each other's.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

import torch

from longvid.errors import InvalidRequestError
from longvid.extend.block_kernels import KERNELS, attend_part, merge
from longvid.extend.kvcache import ATTENTION_NAME, BlockKVCache

# the per-block kernel (``block_kernels.KERNELS``) of the request running in this context:
# "fused" by default; benchmarks and tests choose "online" (the plain-torch reference) through
# ``block_kernel`` to compare. A context variable, not a module global: concurrent requests
# (threads) each see their own.
_KERNEL: contextvars.ContextVar[str] = contextvars.ContextVar("longvid_block_kernel", default="fused")


@contextlib.contextmanager
def block_kernel(kernel: str) -> Iterator[None]:
    """Within (this thread / context only): blocks are attended with ``kernel``."""
    if kernel not in KERNELS:
        raise InvalidRequestError(f"unknown block kernel {kernel!r}; choose from {', '.join(KERNELS)}")
    token = _KERNEL.set(kernel)
    try:
        yield
    finally:
        _KERNEL.reset(token)


_ACTIVE: contextvars.ContextVar[BlockKVCache | None] = contextvars.ContextVar("longvid_block_cache", default=None)
# the attention a language model had before ``install_blockwise`` (by id of its text config):
# what runs when no block cache is active in the calling context
_FALLBACK: dict[int, str] = {}
_INSTALL_LOCK = threading.Lock()


def dispatch_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The attention installed on a language model once: blockwise over the cache active in
    the calling context (``attend_blockwise``), else the model's own attention, unchanged (so
    ``model.generate`` and plain forwards behave as before installation)."""
    if _ACTIVE.get() is not None:
        return blockwise_attention(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    from transformers import AttentionInterface
    from transformers.models.llama.modeling_llama import eager_attention_forward

    own = _FALLBACK.get(id(module.config), "sdpa")
    fn = eager_attention_forward if own == "eager" else AttentionInterface._global_mapping[own]
    return fn(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)


def _dispatch_mask(*args, config=None, **kwargs):
    """No mask inside ``attend_blockwise`` (the blocks are walked causally); otherwise the mask
    the model's own attention builds."""
    if _ACTIVE.get() is not None:
        return None
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    own = _FALLBACK.get(id(config), "sdpa")
    return ALL_MASK_ATTENTION_FUNCTIONS._global_mapping[own](*args, config=config, **kwargs)


def blockwise_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Causal attention of ``query`` (b, heads, q, d) over the active cache's layer, block by
    block, each block's keys before the queries through ``block_kernels.attend_part`` with no
    mask and the queries' own keys with a causal one, the parts merged by log-sum-exp (fp32).
    The last q cached tokens are the queries' own; ``key``/``value`` (the new tokens) are
    already in the cache."""
    cache = _ACTIVE.get()
    if cache is None:
        raise RuntimeError("blockwise_attention runs only inside attend_blockwise(cache)")
    layer = cache.layers[module.layer_idx]
    b, heads, q_len, d = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else d**-0.5
    # (b, kv_heads, groups * q, d): each kv head serves its group of query heads in one call
    q = query.reshape(b, kv_heads, groups * q_len, d)
    total = layer.get_seq_length()
    first_query = total - q_len
    q_pos = torch.arange(first_query, total, device=query.device).repeat(groups)[:, None]
    running = None
    kernel = _KERNEL.get()
    for start, k, v in layer.segments():
        end = start + k.shape[-2]
        split = min(max(first_query - start, 0), k.shape[-2])  # keys before every query: no mask
        if split:
            running = merge(running, attend_part(q, k[..., :split, :], v[..., :split, :], scale, None, kernel))
        if split < k.shape[-2]:  # the queries' own keys: causal
            k_pos = torch.arange(start + split, end, device=query.device)[None, :]
            part = attend_part(q, k[..., split:, :], v[..., split:, :], scale, k_pos <= q_pos, kernel)
            running = merge(running, part)
    out = running[0].reshape(b, heads, q_len, d).transpose(1, 2).contiguous()
    return out.to(query.dtype), None


def install_blockwise(text_config) -> None:
    """Make a language model attend through ``dispatch_attention`` (idempotent, thread-safe).
    This changes the shared model once, at its first request, and never per request:
    whether a forward pass attends blockwise, and over which cache, is the calling context's
    (``attend_blockwise``), so concurrent requests on one model cannot see each other's."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    with _INSTALL_LOCK:
        if ATTENTION_NAME not in AttentionInterface._global_mapping:
            AttentionInterface.register(ATTENTION_NAME, dispatch_attention)
            ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, _dispatch_mask)
        own = text_config._attn_implementation
        if own != ATTENTION_NAME:
            _FALLBACK[id(text_config)] = own or "sdpa"
            text_config._attn_implementation = ATTENTION_NAME


@contextlib.contextmanager
def attend_blockwise(cache: BlockKVCache, text_config) -> Iterator[None]:
    """Within (this thread / context only): the language model of ``text_config`` attends
    through ``blockwise_attention`` over ``cache``, with no mask built."""
    install_blockwise(text_config)
    token = _ACTIVE.set(cache)
    for layer in cache.layers:
        layer.lazy = True
    try:
        yield
    finally:
        for layer in cache.layers:
            layer.lazy = False
        _ACTIVE.reset(token)
