"""How much memory a request needs, before running it; and the 7B reference geometry.

Peak memory = weights + the vision stage (one chunk of frames through the tower) + the KV
cache + the prefill's transient activations (one chunk of tokens: hidden states, the MLP's
intermediate, attention against the whole cache, and the chunk's attention mask). Pooled
visual tokens and the last position's logits are small by construction.

``guard`` refuses a request that cannot fit in free RAM (CPU) or free VRAM (CUDA), with the
estimate and what would make it fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from longvid.errors import DoesNotFitError
from longvid.extend.kvcache import kv_bytes


@dataclass(frozen=True)
class Geometry:
    """The sizes that set memory: language model, vision tower, tokens per temporal step."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vision_hidden: int
    patches_per_frame: int  # patches one frame sends through the vision tower
    parameters: int
    bytes_per_value: int = 2  # bf16 on GPU
    grid_side: int = 0  # tokens per side of one temporal step before longvid's pooling
    frames_per_step: int = 1
    step_extra: int = 0  # unpooled tokens per step (Video-LLaVA's CLS)
    video_extra: int = 0  # tokens after the video (LLaVA-OneVision's newline)
    kv_layers: int | None = None  # layers with keys and values (Qwen3.5: a quarter); None: all
    state_bytes: int = 0  # fixed per-request state of the other layers (Qwen3.5's recurrent states)

    def visual_tokens(self, frames: int, schedule, reducer=None) -> int:
        """Visual tokens for ``frames`` frames under a pooling schedule (uniform/progressive),
        and a reducer's budget of the pooled grid when given."""
        steps = -(-frames // self.frames_per_step)
        side = self.grid_side
        if reducer is not None:
            pooled = -(-side // schedule.stride)
            grid_tokens = reducer.expected_tokens(steps, pooled, pooled)
        else:
            grid_tokens = schedule.expected_tokens(steps, side, side)
        return grid_tokens + steps * self.step_extra + self.video_extra


@dataclass(frozen=True)
class Estimate:
    weights: int
    vision: int
    kv_cache: int
    prefill: int

    @property
    def total(self) -> int:
        return self.weights + self.vision + self.kv_cache + self.prefill

    @property
    def beyond_weights(self) -> int:
        """What a request adds to a loaded model."""
        return self.total - self.weights

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def estimate(
    geo: Geometry,
    frames: int,
    visual_tokens: int,
    text_tokens: int = 64,
    kv_bits: int = 16,
    prefill_chunk: int = 1024,
    chunk_frames: int = 16,
    kv_cap: int | None = None,
) -> Estimate:
    """Analytic peak memory of one request, split by stage (bytes), for longvid's path:
    chunked prefill with blockwise attention over a block KV cache. ``kv_cap``: a KV budget's
    visual tokens per layer (the cache then holds at most those, the text and one chunk)."""
    from longvid.extend.kvcache import DEFAULT_BLOCK

    b = geo.bytes_per_value
    tokens = visual_tokens + text_tokens
    cached = tokens if kv_cap is None else min(tokens, kv_cap + text_tokens + prefill_chunk)
    chunk = min(prefill_chunk, tokens)
    block = min(DEFAULT_BLOCK, tokens)
    # one chunk through one decoder layer at a time: residual + normed + q/k/v/o and the
    # MLP's gate/up/act; then attention against one block at a time: fp32 scores and
    # probabilities (heads x chunk x block), the block's keys and values in fp32, and the
    # fp32 accumulator
    activations = chunk * (4 * geo.hidden + 3 * geo.intermediate) * b
    attention = 2 * geo.heads * chunk * block * 4 + 2 * geo.kv_heads * block * geo.head_dim * 4
    attention += chunk * geo.heads * geo.head_dim * 4
    # vision: a chunk of frames (no more than the request has) through one tower layer
    # (hidden x ~8 live tensors + scores)
    chunk_frames = min(chunk_frames, frames)
    patches = chunk_frames * geo.patches_per_frame
    vision = patches * geo.vision_hidden * 8 * b + chunk_frames * geo.patches_per_frame**2 * b * 16
    return Estimate(
        weights=geo.parameters * b,
        vision=vision,
        kv_cache=_kv(geo, cached, kv_bits) + geo.state_bytes,
        prefill=activations + attention,
    )


def _kv(geo: Geometry, tokens: int, kv_bits: int) -> int:
    """KV bytes of ``tokens`` in the geometry's dtype (``kv_bytes`` counts 16-bit values as bf16)."""
    layers = geo.kv_layers or geo.layers
    if kv_bits == 16:
        return kv_bytes(layers, geo.kv_heads, geo.head_dim, tokens, 16) * geo.bytes_per_value // 2
    return kv_bytes(layers, geo.kv_heads, geo.head_dim, tokens, kv_bits, scale_bytes=geo.bytes_per_value)


def geometry_of(llm, grid: tuple[int, int] | None = None) -> Geometry:
    """The loaded model's own geometry (parameters counted, dtype from its weights);
    ``grid``: the (h, w) tokens of one temporal step of the video at hand (default: the
    largest the processor allows)."""
    ad = llm.adapter
    tc, vc = ad.text_config, ad.config.vision_config
    h, w = grid or ad.native_grid()
    types = list(getattr(tc, "layer_types", None) or [])
    linear = types.count("linear_attention")
    # a Gated DeltaNet layer's recurrent state (value heads x key dim x value dim, fp32) and conv
    state = linear * getattr(tc, "linear_num_value_heads", 0) * getattr(tc, "linear_key_head_dim", 0) * getattr(
        tc, "linear_value_head_dim", 0
    ) * 4  # fmt: skip
    intermediate = getattr(tc, "intermediate_size", None) or getattr(tc, "moe_intermediate_size", 0) * getattr(
        tc, "num_experts_per_tok", 1
    )  # fmt: skip
    return Geometry(
        layers=tc.num_hidden_layers,
        kv_layers=(len(types) - linear) if linear else None,
        state_bytes=state,
        hidden=tc.hidden_size,
        intermediate=intermediate,
        heads=tc.num_attention_heads,
        kv_heads=tc.num_key_value_heads,
        head_dim=ad.head_dim(),
        vision_hidden=getattr(vc, "hidden_size", getattr(vc, "embed_dim", 0)),
        patches_per_frame=ad.patches_per_frame(h, w),
        parameters=sum(p.numel() for p in ad.model.parameters()),
        bytes_per_value=ad.dtype.itemsize,
        grid_side=max(h, w),
        frames_per_step=ad.frames_per_step,
        step_extra=ad.step_extra_tokens,
        video_extra=ad.extra_token_count(),
    )


def kv_bytes_per_token(geo: Geometry, kv_bits: int) -> float:
    """What one token costs in the KV cache across the layers that keep keys and values, in
    the model's dtype (scales and zeros included when quantized)."""
    per = 1024  # whole quantization groups
    return _kv(geo, per, kv_bits) / per


def available_bytes(device: str | torch.device) -> int:
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    import psutil

    return psutil.virtual_memory().available


def guard(
    need: Estimate, device: str | torch.device, alternatives: Callable[[int], list[tuple[dict, Estimate]]]
) -> None:
    """Refuse a request whose estimate (beyond weights already loaded) exceeds free memory
    with a ``DoesNotFitError``. ``alternatives(free bytes)`` lists other option values
    ({option: value}) with their estimates; the error carries those that would fit, as data."""
    free = available_bytes(device)
    request = need.beyond_weights
    if request <= free:
        return
    fits = [(options, alt.beyond_weights) for options, alt in alternatives(free) if alt.beyond_weights <= free]
    parts = {"KV cache": need.kv_cache, "prefill": need.prefill, "vision": need.vision}
    raise DoesNotFitError(request, free, torch.device(device).type, parts, fits)
