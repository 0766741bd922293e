"""longvid's RoPE functions equal transformers' for equal parameters; modes do what they say."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import Qwen2Config
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from longvid.errors import InvalidRequestError
from longvid.extend.rope import EXTEND_MODES, inv_freq, plan_rope

HEAD_DIM, BASE, WINDOW = 64, 1_000_000.0, 4096


def hf(rope_type: str, seq_len=None, **params):
    rope = {"rope_type": rope_type, "rope_theta": BASE, **params}
    config = Qwen2Config(
        hidden_size=HEAD_DIM * 4, num_attention_heads=4, max_position_embeddings=WINDOW, rope_parameters=rope
    )
    return ROPE_INIT_FUNCTIONS[rope_type](config, "cpu", seq_len=seq_len)


@pytest.mark.parametrize("factor", [1.0, 2.0, 7.5, 32.0])
def test_linear_equals_transformers(factor):
    ours, a = inv_freq("linear", HEAD_DIM, BASE, factor=factor)
    ref, b = hf("linear", factor=factor)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0)
    assert a == b == 1.0


@pytest.mark.parametrize("factor", [1.0, 4.0, 16.0])
@pytest.mark.parametrize("beta", [(32, 1), (16, 2)])
@pytest.mark.parametrize("original", [2048, 6272])
def test_yarn_equals_transformers(factor, beta, original):
    ours, a = inv_freq(
        "yarn", HEAD_DIM, BASE, factor=factor, original_length=original, beta_fast=beta[0], beta_slow=beta[1]
    )
    ref, b = hf("yarn", factor=factor, original_max_position_embeddings=original, beta_fast=beta[0], beta_slow=beta[1])
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0)
    assert a == pytest.approx(b, abs=1e-6)
    assert a == pytest.approx(1.0 if factor == 1 else 0.1 * math.log(factor) + 1, abs=1e-9)


@pytest.mark.parametrize("seq_len", [1000, WINDOW, 3 * WINDOW, 10 * WINDOW])
@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_dynamic_equals_transformers(seq_len, factor):
    ours, _ = inv_freq("dynamic", HEAD_DIM, BASE, factor=factor, original_length=WINDOW, seq_len=seq_len)
    ref, _ = hf("dynamic", seq_len=seq_len, factor=factor)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0)


@pytest.mark.parametrize("scale", [1.0, 3.0, 8.0])
def test_ntk_is_base_change_and_equals_dynamic_at_its_length(scale):
    ours, _ = inv_freq("ntk", HEAD_DIM, BASE, factor=scale)
    new_base = BASE * scale ** (HEAD_DIM / (HEAD_DIM - 2))
    direct = 1.0 / (new_base ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
    torch.testing.assert_close(ours, direct, rtol=1e-6, atol=0)
    ref, _ = hf("dynamic", seq_len=int(scale * WINDOW), factor=1.0)  # NTK by L/L0 = scale
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0)


def test_default_equals_transformers_default():
    ours, _ = inv_freq("default", HEAD_DIM, BASE)
    config = Qwen2Config(
        hidden_size=HEAD_DIM * 4, num_attention_heads=4, rope_parameters={"rope_type": "default", "rope_theta": BASE}
    )
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

    torch.testing.assert_close(ours, Qwen2RotaryEmbedding(config).inv_freq, rtol=0, atol=0)


def common(mode, visual, total, **params):
    return plan_rope(
        mode, head_dim=HEAD_DIM, base=BASE, visual_tokens=visual, total_tokens=total,
        visual_window=6272, language_window=32768, **params,
    )  # fmt: skip


@pytest.mark.parametrize("mode", sorted(EXTEND_MODES))
def test_every_mode_is_the_baseline_within_its_window(mode):
    plan = common(mode, visual=6000, total=6100)
    assert plan.scale == 1.0 and plan.position_scale == 1.0
    assert plan.inv_freq is None and plan.attention_factor == 1.0


@pytest.mark.parametrize("mode", sorted(set(EXTEND_MODES) - {"none"}))
def test_every_mode_changes_something_beyond_its_window(mode):
    plan = common(mode, visual=50_176, total=70_000)  # 256 frames x 196 tokens; past W_l too
    baseline, _ = inv_freq("default", HEAD_DIM, BASE)
    assert plan.scale > 1
    if mode == "visual-pi":
        assert plan.position_scale == pytest.approx(50_176 / 6272) and plan.inv_freq is None
    else:
        assert plan.inv_freq is not None and not torch.allclose(plan.inv_freq, baseline)


def test_visual_yarn_uses_the_visual_window():
    plan = common("visual-yarn", visual=25_088, total=25_200)  # 128 frames x 196 tokens
    assert plan.window == 6272 and plan.scale == pytest.approx(4.0)
    ref, _ = inv_freq("yarn", HEAD_DIM, BASE, factor=4.0, original_length=6272)
    torch.testing.assert_close(plan.inv_freq, ref, rtol=0, atol=0)
    assert plan.attention_factor == pytest.approx(0.1 * math.log(4) + 1)
    # the language window (32,768) is not exceeded, so plain yarn changes nothing here
    assert common("yarn", visual=25_088, total=25_200).inv_freq is None


def test_bad_mode_and_factor():
    with pytest.raises(InvalidRequestError, match="unknown extension mode"):
        common("longrope", 1, 1)
    with pytest.raises(InvalidRequestError, match="unknown RoPE type"):
        inv_freq("bogus", HEAD_DIM, BASE)
    with pytest.raises(InvalidRequestError, match=">= 1"):
        inv_freq("linear", HEAD_DIM, BASE, factor=0.5)


def test_unknown_rope_parameters_are_refused_not_dropped():
    with pytest.raises(InvalidRequestError, match="linear RoPE takes no beta_fast"):
        inv_freq("linear", HEAD_DIM, BASE, factor=2.0, beta_fast=16)
    with pytest.raises(InvalidRequestError, match="yarn RoPE takes no beta_fats"):
        inv_freq("yarn", HEAD_DIM, BASE, factor=2.0, original_length=64, beta_fats=16)
    with pytest.raises(InvalidRequestError, match="'visual-yarn' takes no dynamic_factor"):
        common("visual-yarn", 25_088, 25_200, dynamic_factor=3.0)
    # a parameter the mode does take changes the frequencies
    default = common("visual-yarn", 25_088, 25_200).inv_freq
    assert not torch.equal(common("visual-yarn", 25_088, 25_200, beta_fast=8.0).inv_freq, default)
