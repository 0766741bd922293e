"""Group-wise asymmetric quantization with bit packing (the block KV cache's storage):
min-max per group of consecutive elements, codes packed low bits first."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from longvid.errors import InvalidRequestError


@dataclass
class Quantized:
    """A tensor quantized in groups of ``group`` consecutive elements along its last axis
    (after moving ``axis`` there): packed codes, one scale and one zero per group."""

    packed: torch.Tensor  # uint8, 8/bits codes per byte
    scale: torch.Tensor
    zero: torch.Tensor
    shape: tuple[int, ...]  # the shape with ``axis`` moved last
    axis: int
    bits: int

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.packed, self.scale, self.zero))


def quantize(x: torch.Tensor, bits: int, group: int, axis: int = -1) -> Quantized:
    """Round-to-nearest min-max quantization: code = round((x - min) / scale), scale =
    (max - min) / (2^bits - 1) per group; codes packed low bits first."""
    if bits not in (8, 4, 2):
        raise InvalidRequestError(f"quantized widths are 8, 4 and 2 bits (got {bits})")
    moved = x.movedim(axis, -1)
    shape = tuple(moved.shape)
    if shape[-1] % group:
        raise InvalidRequestError(f"group {group} does not divide the quantized axis ({shape[-1]})")
    per_byte = 8 // bits
    if group % per_byte:
        raise InvalidRequestError(f"group {group} must hold whole bytes of {per_byte} codes")
    g = moved.reshape(-1, group).float().contiguous()
    low, high = g.amin(dim=1, keepdim=True), g.amax(dim=1, keepdim=True)
    levels = (1 << bits) - 1
    scale = ((high - low) / levels).clamp_min(1e-8)
    codes = ((g - low) / scale).round_().clamp_(0, levels).to(torch.uint8)
    codes = codes.view(-1, per_byte)
    packed = codes[:, 0].clone()
    for i in range(1, per_byte):
        packed |= codes[:, i] << (bits * i)
    dtype = x.dtype
    return Quantized(packed, scale.to(dtype), low.to(dtype), shape, axis, bits)


def dequantize(q: Quantized) -> torch.Tensor:
    per_byte = 8 // q.bits
    mask = (1 << q.bits) - 1
    codes = q.packed if per_byte == 1 else torch.stack([q.packed >> q.bits * i & mask for i in range(per_byte)], dim=1)
    groups = q.scale.shape[0]
    values = codes.reshape(groups, -1).to(q.scale.dtype) * q.scale + q.zero
    return values.reshape(q.shape).movedim(-1, q.axis)
