"""The block KV cache: quantization against a plain reference, blockwise attention against
SDPA, and the cache inside transformers' own generate()."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from longvid.extend import block_kernels, blockwise, kvcache
from longvid.extend.block_kernels import KERNELS
from longvid.extend.blockwise import attend_blockwise, blockwise_attention
from longvid.extend.kvcache import BlockKVLayer, cache_bytes, make_cache
from longvid.extend.quantize import dequantize, quantize


def reference_quantize(x: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """Fake-quantize along the last axis, element by element, as the docs state it."""
    out = torch.empty_like(x)
    flat, dst = x.reshape(-1, group), out.view(-1, group)
    levels = 2**bits - 1
    for i, g in enumerate(flat):
        low, high = float(g.min()), float(g.max())
        scale = max((high - low) / levels, 1e-8)
        for j, v in enumerate(g):
            code = min(max(round((float(v) - low) / scale), 0), levels)
            dst[i, j] = code * scale + low
    return out


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("axis", [-1, -2])
def test_quantize_matches_reference_and_packs(bits, axis):
    torch.manual_seed(bits)
    x = torch.randn(1, 2, 16, 8) * 3
    q = quantize(x, bits, group=8, axis=axis)
    assert q.packed.dtype == torch.uint8 and q.packed.numel() == x.numel() * bits // 8
    ref = reference_quantize(x.movedim(axis, -1).contiguous(), bits, 8).movedim(-1, axis)
    torch.testing.assert_close(dequantize(q), ref, rtol=0, atol=1e-5)
    # the error is at most half a step of each group's scale
    step = (x.movedim(axis, -1).reshape(-1, 8).aminmax()[1] - x.movedim(axis, -1).reshape(-1, 8).aminmax()[0]).max()
    assert (dequantize(q) - x).abs().max() <= step / (2 * (2**bits - 1)) + 1e-5


def test_quantize_rejects_groups_that_do_not_fit():
    with pytest.raises(Exception, match="does not divide"):
        quantize(torch.zeros(2, 10), 4, group=4)


class FakeAttention(torch.nn.Module):
    def __init__(self, layer_idx: int = 0) -> None:
        super().__init__()
        self.layer_idx = layer_idx


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("block,chunk", [(4, 3), (8, 8), (16, 5), (1024, 7)])
def test_blockwise_attention_equals_causal_sdpa(block, chunk, kernel, monkeypatch):
    """Chunks that straddle blocks (the queries' own keys split across two), GQA groups."""
    torch.manual_seed(0)
    b, heads, kv_heads, d, length = 1, 4, 2, 8, 29
    q = torch.randn(b, heads, length, d)
    k = torch.randn(b, kv_heads, length, d)
    v = torch.randn(b, kv_heads, length, d)
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True)

    class Cfg:
        _attn_implementation = "sdpa"

    cache = make_cache(16, type("C", (), {"num_hidden_layers": 1}), block=block)
    outs = []
    with attend_blockwise(cache, Cfg), blockwise.block_kernel(kernel):
        for s in range(0, length, chunk):
            sl = slice(s, s + chunk)
            nk, nv = cache.update(k[:, :, sl], v[:, :, sl], 0)
            out, _ = blockwise_attention(FakeAttention(), q[:, :, sl], nk, nv, None, scaling=1 / math.sqrt(d))
            outs.append(out.transpose(1, 2))
    # installed once: the dispatcher, which falls back to the model's own attention outside
    assert Cfg._attn_implementation == kvcache.ATTENTION_NAME and blockwise._FALLBACK[id(Cfg)] == "sdpa"
    torch.testing.assert_close(torch.cat(outs, dim=2), ref, rtol=1e-5, atol=1e-5)
    layer = cache.layers[0]
    # blocks are stored at the pass after the one that wrote them
    before_last_pass = (length - 1) // chunk * chunk
    assert layer.get_seq_length() == length and len(layer.blocks) == before_last_pass // block


def test_fused_parts_merge_to_the_online_reference_in_bf16_and_fall_back_when_refused(monkeypatch):
    """The fused kernel's output and log-sum-exp agree with the fp32 reference (bf16 inputs:
    to bf16 precision); a kernel that raises falls back to the reference, with one warning."""
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 2, 6, 16), torch.randn(1, 2, 9, 16), torch.randn(1, 2, 9, 16)
    allowed = torch.ones(6, 9, dtype=torch.bool).tril(3)
    parts = [(slice(0, 4), None), (slice(4, 9), allowed[:, 4:])]
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        got = ref = None
        for sl, mask in parts:
            qd, kd, vd = q.to(dtype), k[..., sl, :].to(dtype), v[..., sl, :].to(dtype)
            got = block_kernels.merge(got, block_kernels.attend_part(qd, kd, vd, 0.25, mask, "fused"))
            ref = block_kernels.merge(ref, block_kernels.attend_part(qd, kd, vd, 0.25, mask, "online"))
        scores = (q @ k.transpose(-1, -2) * 0.25).masked_fill(
            ~torch.cat([torch.ones(6, 4, dtype=torch.bool), allowed[:, 4:]], 1), -math.inf
        )
        torch.testing.assert_close(ref[1], torch.logsumexp(scores, -1, keepdim=True), rtol=tol, atol=tol)
        torch.testing.assert_close(got[0], ref[0], rtol=tol, atol=tol)
        torch.testing.assert_close(got[1], ref[1], rtol=tol, atol=tol)

    def refuse(*args, **kwargs):
        raise RuntimeError("no kernel for this shape")

    monkeypatch.setattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", refuse)
    monkeypatch.setattr(block_kernels, "_refused", set())
    with pytest.warns(UserWarning, match="fused block attention refused"):
        out, _ = block_kernels.attend_part(q, k, v, 0.25, None, "fused")
    torch.testing.assert_close(out, torch.softmax(q @ k.transpose(-1, -2) * 0.25, -1) @ v, rtol=1e-5, atol=1e-5)


def test_layer_flushes_whole_blocks_after_the_pass_that_wrote_them():
    layer = BlockKVLayer(bits=4, block=8, group=8)
    k = torch.randn(1, 1, 12, 8)
    keys, _ = layer.update(k, k)  # 12 tokens: all full precision during this pass
    torch.testing.assert_close(keys, k)
    assert layer.blocks == [] and layer.get_seq_length() == 12
    layer.update(k[:, :, :1], k[:, :, :1])  # the next pass stores the first block, quantized
    assert len(layer.blocks) == 1 and layer.keys.shape[-2] == 5 and layer.get_seq_length() == 13
    assert 0 < layer.nbytes() < (13 * 8 * 2) * 4


def test_block_cache_in_transformers_generate():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    model = Qwen2ForCausalLM(cfg).eval()
    ids = torch.randint(0, 50, (1, 40))
    kw = dict(max_new_tokens=6, do_sample=False)
    plain = model.generate(ids, **kw)
    # the model's own attention over the materialized blocks: identical at 16 bits
    blocks16 = model.generate(ids, cache=make_cache(16, cfg, block=16), **kw)
    assert torch.equal(plain, blocks16)
    cache = make_cache(8, cfg, block=16, group=16)
    out = model.generate(ids, cache=cache, **kw)
    assert out.shape == plain.shape and cache.layers[0].blocks and cache_bytes(cache) > 0
