"""KV cache stored in blocks, 16-bit or group-wise quantized to 8 / 4 / 2 bits (KIVI-style:
keys per channel, values per token), and an attention that reads it block by block.

Why not transformers' ``QuantizedCache``: at every flush of its residual window it
dequantizes the whole cache, concatenates and re-quantizes all of it (O(L^2) work: a
22k-token chunked prefill took over 15 minutes), and every forward materializes the whole
layer's keys and values in full precision, so its peak is that of an unquantized cache.
``DynamicCache`` grows by concatenation (a transient copy of a layer at every chunk), and a
chunked prefill through SDPA builds a chunk x cache float mask.

``BlockKVCache`` keeps a layer as a list of ``block``-token blocks (plain tensors at 16 bits,
quantized once when full at lower widths) plus a short full-precision tail, and
``blockwise.blockwise_attention`` (an attention function registered with transformers) walks those
blocks, a fused kernel per block merged by log-sum-exp (``block_kernels``): no float mask,
no concatenation, and only one block dequantized at a time. Peak memory is then the cache
plus one chunk's activations. Outside ``attend_blockwise`` (e.g. ``model.generate(cache=cache)``
with the model's own attention) the cache still works: ``update`` returns the whole layer, materialized.

Note what quantization changes: the tokens of the current forward pass attend to their own
keys and values unquantized (blocks are quantized at the next update, after attention), so
with a one-shot prefill the first generated token is exact. With chunked prefill each chunk
attends to the quantized earlier blocks, so the first token already carries some error
(measured in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from longvid.errors import InvalidRequestError
from longvid.extend.kvbudget import rows_to_keep, step_scores
from longvid.extend.modes import KV_BITS
from longvid.extend.quantize import Quantized, dequantize, quantize

DEFAULT_GROUP = 64
# Tokens a block holds. Quantizing and dequantizing whole 1,024-token blocks keeps the
# per-call overhead small on CPU; the full-precision tail never exceeds a block plus a chunk.
DEFAULT_BLOCK = 1024
ATTENTION_NAME = "longvid_blockwise"


def kv_backend(bits: int) -> str:
    """Which implementation serves a bit width (named in reports)."""
    if bits not in KV_BITS:
        raise InvalidRequestError(f"kv bits must be one of {', '.join(map(str, KV_BITS))} (got {bits})")
    return "blocks (unquantized)" if bits == 16 else f"blocks (int{bits}, keys per channel, values per token)"


# ---------------------------------------------------------------------------------------
# the cache


class BlockKVLayer(CacheLayerMixin):
    """One layer's keys and values: whole blocks (quantized below 16 bits) + a tail.

    ``self.keys`` / ``self.values`` are the full-precision tail, (batch, kv_heads, n, head_dim).
    """

    is_croppable = False

    def __init__(self, bits: int = 16, block: int = DEFAULT_BLOCK, group: int = DEFAULT_GROUP) -> None:
        super().__init__()
        kv_backend(bits)
        if bits != 16 and block % group:
            raise InvalidRequestError(f"block ({block}) must be a multiple of the group ({group})")
        self.bits, self.block, self.group = bits, block, group
        self.blocks: list[tuple[torch.Tensor | Quantized, torch.Tensor | Quantized]] = []
        self.blocked_tokens = 0
        self.lazy = False  # True inside ``attend_blockwise``: update returns only the new tokens
        # under a KV budget (``kvbudget``): each row's keep score (+inf: never dropped), the
        # temporal steps of the rows the next pass brings (None: rows never dropped), and the
        # last steps' unit values for scoring the next chunk
        self.track = False
        self.scores = torch.zeros(0)
        self.incoming_steps: tuple[torch.Tensor, torch.Tensor] | None = None
        self.recent = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = key_states[..., :0, :].clone()
        self.values = value_states[..., :0, :].clone()
        head_dim = key_states.shape[-1]
        # keys grouped along tokens (per channel), values along head_dim (per token), as KIVI
        self.key_group = self.group
        self.value_group = math.gcd(self.group, head_dim)
        self.is_initialized = True

    def _store(self, keys: torch.Tensor, values: torch.Tensor):
        if self.bits == 16:
            return keys.contiguous(), values.contiguous()
        return (
            quantize(keys, self.bits, self.key_group, axis=-2),
            quantize(values, self.bits, self.value_group, axis=-1),
        )

    def flush(self) -> None:
        """Move every whole block of the tail into the block list (quantizing it)."""
        if not self.is_initialized:
            return
        full = (self.keys.shape[-2] // self.block) * self.block
        if full == 0:
            return
        for start in range(0, full, self.block):
            sl = slice(start, start + self.block)
            self.blocks.append(self._store(self.keys[..., sl, :], self.values[..., sl, :]))
        self.blocked_tokens += full
        self.keys = self.keys[..., full:, :].clone()
        self.values = self.values[..., full:, :].clone()

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        # blocks completed by earlier passes are stored now, after those passes attended to
        # them unquantized: a pass always sees its own tokens at full precision
        self.flush()
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        if self.track:
            self._score(value_states)
        if self.lazy:
            return key_states, value_states
        return self.materialize()

    def _score(self, values: torch.Tensor) -> None:
        n = values.shape[-2]
        incoming = self.incoming_steps
        if incoming is None or incoming[0].shape[0] != n:  # text, generated tokens: never dropped
            new = torch.full((n,), math.inf)
        else:
            new, self.recent = step_scores(values[0], *incoming, self.recent)
        self.scores = torch.cat([self.scores, new])

    def compact(self, cap: int) -> int:
        """Keep every never-dropped row and the ``cap`` best-scored visual rows (``kvbudget``);
        returns how many rows were dropped. Blocks before the first dropped row stay as they
        are; from there the old blocks are read one at a time (a quantized block dequantized),
        their kept rows gathered, and new blocks written as they fill (quantized again: values
        exactly, keys on their new groups' grid), each old block released once read: the
        compaction holds about two blocks beyond the cache, never a copy of it."""
        if not self.is_initialized:
            return 0
        keep = rows_to_keep(self.scores, cap)
        if keep is None:
            return 0
        first_drop = int((~keep).nonzero()[0, 0])
        old, self.blocks, start = self.blocks, [], 0
        while old and start + self._rows(old[0][0]) <= first_drop:  # untouched: kept as they are
            start += self._rows(old[0][0])
            self.blocks.append(old.pop(0))
        self.blocked_tokens = start
        tail_keys, tail_values = self.keys, self.values
        self.keys = self.values = None
        staged_k: list[torch.Tensor] = []
        staged_v: list[torch.Tensor] = []
        pos = start
        while old or tail_keys is not None:
            if old:
                k, v = old.pop(0)  # released from the list: freed once gathered
                if isinstance(k, Quantized):
                    k, v = dequantize(k), dequantize(v)
            else:
                k, v, tail_keys, tail_values = tail_keys, tail_values, None, None
            index = keep[pos : pos + k.shape[-2]].nonzero().squeeze(1).to(k.device)
            pos += k.shape[-2]
            staged_k.append(k.index_select(-2, index))
            staged_v.append(v.index_select(-2, index))
            del k, v
            if sum(t.shape[-2] for t in staged_k) >= self.block:
                self.keys, self.values = torch.cat(staged_k, dim=-2), torch.cat(staged_v, dim=-2)
                staged_k, staged_v = [], []
                self.flush()  # whole blocks stored; the rest stays the tail
                staged_k, staged_v = [self.keys], [self.values]
        self.keys, self.values = torch.cat(staged_k, dim=-2), torch.cat(staged_v, dim=-2)
        self.flush()
        dropped = int((~keep).sum())
        self.scores = self.scores[keep]
        return dropped

    @staticmethod
    def _rows(k: torch.Tensor | Quantized) -> int:
        return k.shape[-1] if isinstance(k, Quantized) else k.shape[-2]

    def segments(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """(first token, keys, values) for each block and the tail, full precision, one at a time."""
        start = 0
        for k, v in self.blocks:
            if isinstance(k, Quantized):
                k, v = dequantize(k), dequantize(v)
            yield start, k, v
            start += k.shape[-2]
        if self.keys.shape[-2]:
            yield start, self.keys, self.values

    def materialize(self) -> tuple[torch.Tensor, torch.Tensor]:
        parts = list(self.segments())
        return torch.cat([k for _, k, _ in parts], dim=-2), torch.cat([v for _, _, v in parts], dim=-2)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        if not self.is_initialized:
            return 0
        return self.blocked_tokens + self.keys.shape[-2]

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.blocks, self.blocked_tokens = [], 0
        self.scores, self.recent = torch.zeros(0), None
        self.keys = self.values = None
        self.is_initialized = False

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise NotImplementedError("longvid's block KV cache does not support beam search")

    def nbytes(self) -> int:
        total = 0
        for k, v in self.blocks:
            for t in (k, v):
                total += t.nbytes() if isinstance(t, Quantized) else t.numel() * t.element_size()
        if self.is_initialized:
            total += (self.keys.numel() + self.values.numel()) * self.keys.element_size()
        return total


class BlockKVCache(Cache):
    """A transformers ``Cache`` of ``BlockKVLayer``s; for a hybrid model (``layer_types``:
    Qwen3.5's Gated DeltaNet layers), transformers' linear-attention layers (a convolution and
    a recurrent state, fixed size) where the model has no keys and values."""

    def __init__(self, num_layers: int, bits: int = 16, block: int = DEFAULT_BLOCK, group: int = DEFAULT_GROUP,
                 layer_types: list[str] | None = None):  # fmt: skip
        from transformers.cache_utils import LinearAttentionLayer

        types = list(layer_types or ["full_attention"] * num_layers)
        layers = [
            LinearAttentionLayer() if t == "linear_attention" else BlockKVLayer(bits, block, group) for t in types
        ]
        super().__init__(layers=layers)
        self.bits = bits
        self.dropped_tokens = 0  # rows a KV budget dropped from each layer (``compact``)

    def flush(self) -> None:
        for layer in self.layers:
            if isinstance(layer, BlockKVLayer):
                layer.flush()

    def track(self) -> None:
        """Score every visual row as it enters (for ``compact``: a KV budget); rows already
        held when tracking starts are never dropped."""
        for layer in self.layers:
            if isinstance(layer, BlockKVLayer) and not layer.track:
                layer.track = True
                layer.scores = torch.full((layer.get_seq_length(),), math.inf)

    def expect(self, steps: torch.Tensor | None, grid: torch.Tensor | None = None) -> None:
        """The temporal step of each row the next forward pass brings (-1: never dropped), and
        which are grid tokens (default: every row of a step)."""
        incoming = None if steps is None else (steps, steps >= 0 if grid is None else grid)
        for layer in self.layers:
            if isinstance(layer, BlockKVLayer):
                layer.incoming_steps = incoming

    def compact(self, cap: int) -> int:
        """Each layer keeps at most ``cap`` visual rows (``BlockKVLayer.compact``); returns the
        rows dropped from each layer (the same count in every layer)."""
        dropped = [layer.compact(cap) for layer in self.layers if isinstance(layer, BlockKVLayer)]
        return max(dropped, default=0)

    def snapshot(self) -> list[tuple]:
        """The cache's state now, to ``restore`` after more tokens were added. No tensor is
        copied: blocks and tails are replaced, never written into, when tokens are added or
        the cache is compacted (only the block list is copied)."""
        out = []
        for layer in self.layers:
            if not isinstance(layer, BlockKVLayer):  # linear attention: states updated in place, so copied
                out.append(_linear_state(layer))
                continue
            state = (list(layer.blocks), layer.blocked_tokens, getattr(layer, "keys", None),
                     getattr(layer, "values", None), layer.is_initialized, layer.scores, layer.recent)  # fmt: skip
            out.append(state)
        return out

    def restore(self, state: list[tuple]) -> None:
        """Back to a ``snapshot``: the blocks and tail it had (later tokens are dropped); a
        linear-attention layer's states copied back."""
        for layer, saved in zip(self.layers, state, strict=True):
            if not isinstance(layer, BlockKVLayer):
                _set_linear_state(layer, saved)
                continue
            blocks, blocked, keys, values, initialized, scores, recent = saved
            layer.blocks = list(blocks)
            layer.blocked_tokens, layer.keys, layer.values, layer.is_initialized = blocked, keys, values, initialized
            layer.scores, layer.recent = scores, recent


_LINEAR_FIELDS = ("conv_states", "recurrent_states", "has_previous_state", "is_conv_states_initialized",
                  "is_recurrent_states_initialized", "conv_kernel_size")  # fmt: skip


def _linear_state(layer) -> dict:
    return {name: _linear_state_copy(getattr(layer, name)) for name in _LINEAR_FIELDS if hasattr(layer, name)}


def _set_linear_state(layer, saved: dict) -> None:
    for name, value in saved.items():
        setattr(layer, name, _linear_state_copy(value))


def _linear_state_copy(v):
    if isinstance(v, torch.Tensor):
        return v.clone()
    if isinstance(v, dict):
        return {k: _linear_state_copy(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return type(v)(_linear_state_copy(x) for x in v)
    return v


def make_cache(bits: int, config, block: int = DEFAULT_BLOCK, group: int = DEFAULT_GROUP) -> BlockKVCache:
    """A block cache for a text config's layers at ``bits`` (16 = unquantized); a hybrid
    model's linear-attention layers (``layer_types``) hold their own states."""
    return BlockKVCache(config.num_hidden_layers, bits, block, group, getattr(config, "layer_types", None))


def cache_bytes(cache) -> int:
    """Measured bytes a cache holds: codes, scales and zeros, the full-precision tail."""
    if isinstance(cache, BlockKVCache):
        total = 0
        for layer in cache.layers:
            if isinstance(layer, BlockKVLayer):
                total += layer.nbytes()
            else:  # a linear-attention layer: its convolution and recurrent states
                for states in (getattr(layer, "conv_states", None), getattr(layer, "recurrent_states", None)):
                    values = states.values() if isinstance(states, dict) else (states or [])
                    total += sum(t.numel() * t.element_size() for t in values if isinstance(t, torch.Tensor))
        return total
    total = 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def kv_bytes(
    layers: int,
    kv_heads: int,
    head_dim: int,
    tokens: int,
    bits: int = 16,
    group: int = DEFAULT_GROUP,
    scale_bytes: int = 2,
    value_group: int | None = None,
) -> int:
    """Analytic KV-cache size: 2 · layers · kv_heads · head_dim · tokens · bits/8, plus a
    scale and a zero per group when quantized (in the compute dtype: 2 bytes in bf16, 4 in
    fp32). Keys are grouped by ``group`` tokens, values by ``value_group`` channels
    (default ``group``)."""
    half = layers * kv_heads * head_dim * tokens
    if bits == 16:
        return 2 * half * 2
    value_group = value_group or group
    return 2 * half * bits // 8 + (half // group + half // value_group) * 2 * scale_bytes
