"""A checkpoint's own RoPE scaling is the base every extension mode composes with (LLaVA-NeXT-
Video-7B ships linear x2.5 over 4,096 positions: trained at 10,240). Frequencies are checked
against references written here from the formulas; ``extend none`` against transformers'
own forward, for each scaling type a config can carry."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from longvid.errors import InvalidRequestError
from longvid.extend.rope import OwnRope, plan_rope

D, BASE, POSITIONS, FACTOR = 128, 10_000.0, 4096, 2.5
LINEAR = OwnRope("linear", FACTOR, POSITIONS)
W_L = 10_240


def default_freqs(base: float = BASE) -> torch.Tensor:
    return 1.0 / base ** (torch.arange(0, D, 2, dtype=torch.float64) / D)


def yarn_reference(factor: float, original: float, beta_fast=32.0, beta_slow=1.0) -> torch.Tensor:
    """YaRN from its paper: dimension i keeps its frequency when it turns more than beta_fast
    times over the original length, is divided by the factor below beta_slow turns, and is
    ramped linearly (over whole dimensions) in between."""

    def dim_of(turns: float) -> float:
        return D * math.log(original / (turns * 2 * math.pi)) / (2 * math.log(BASE))

    low, high = max(math.floor(dim_of(beta_fast)), 0), min(math.ceil(dim_of(beta_slow)), D - 1)
    i = torch.arange(D // 2, dtype=torch.float64)
    interpolated = ((i - low) / (high - low)).clamp(0, 1)
    f = default_freqs()
    return f * (1 - interpolated) + f / factor * interpolated


def plan(mode: str, visual: int, total: int, own: OwnRope = LINEAR, visual_window: int = 4608):
    return plan_rope(mode, head_dim=D, base=BASE, visual_tokens=visual, total_tokens=total,
                     visual_window=visual_window, language_window=own.trained_window, own=own)  # fmt: skip


def test_the_trained_window_includes_the_checkpoints_own_scaling(hub_dirs):
    from longvid.models.checkpoint.registry import read_adapter

    ad = read_adapter(hub_dirs["llava_next_video"])
    assert ad.own_rope() == LINEAR and ad.language_window() == W_L
    assert ad.own_rope().describe() == "linear x2.5 over 4,096 positions (W_l 10,240)"
    assert read_adapter(hub_dirs["llava_onevision"]).own_rope().rope_type == "default"


@pytest.mark.parametrize("mode", ["linear", "ntk", "dynamic", "yarn", "visual-yarn", "visual-pi"])
def test_inside_the_trained_window_every_mode_leaves_the_model_as_it_is(mode):
    """32 frames of LLaVA-NeXT-Video: 4,625 tokens, past 4,096 but inside 10,240 (and W_v)."""
    got = plan(mode, visual=4608, total=4625)
    assert got.scale == 1.0 and got.inv_freq is None and got.position_scale == 1.0


def test_each_mode_beyond_the_window_acts_on_the_checkpoints_frequencies():
    s = 20_480 / W_L  # twice the trained window
    own = default_freqs() / FACTOR  # what the model runs with
    cases = {
        "linear": default_freqs() / (FACTOR * s),
        "ntk": default_freqs(BASE * s ** (D / (D - 2))) / FACTOR,
        # dynamic NTK (factor 2) at twice the window: base x (2 x 2 - 1)^(d / (d - 2))
        "dynamic": default_freqs(BASE * 3.0 ** (D / (D - 2))) / FACTOR,
        "yarn": yarn_reference(s, POSITIONS) / FACTOR,
    }
    for mode, want in cases.items():
        got = plan(mode, visual=4608, total=20_480)
        assert got.scale == pytest.approx(s)
        torch.testing.assert_close(got.inv_freq.double(), want, rtol=1e-5, atol=0, msg=mode)
    # the highest frequency of YaRN is the model's own (base / 2.5), not the unscaled base
    yarn = plan("yarn", visual=4608, total=20_480).inv_freq
    assert float(yarn[0]) == pytest.approx(float(own[0]), rel=1e-6)
    # visual-yarn: YaRN against W_v with s = N_v / W_v, on the model's frequencies
    v = plan("visual-yarn", visual=6912, total=7000)  # 48 frames x 144
    torch.testing.assert_close(v.inv_freq.double(), yarn_reference(6912 / 4608, 4608 / FACTOR) / FACTOR, rtol=1e-5,
                               atol=0)  # fmt: skip
    assert float(v.inv_freq[0]) == pytest.approx(1 / FACTOR, rel=1e-6)


@pytest.mark.parametrize("mode", ["linear", "ntk", "dynamic", "yarn"])
def test_no_jump_just_past_the_window(mode):
    """Before, the scale passing 1 replaced base / 2.5 by base / 1.0001: a jump of 2.5x."""
    own = (default_freqs() / FACTOR).float()
    got = plan(mode, visual=4608, total=W_L + 2)
    torch.testing.assert_close(got.inv_freq, own, rtol=2e-3, atol=0)


def test_a_checkpoint_with_yarn_or_dynamic_of_its_own_refuses_what_does_not_compose():
    own = OwnRope("yarn", 4.0, 32_768, 32_768)
    assert own.trained_window == 131_072
    assert plan("yarn", visual=1000, total=100_000, own=own).inv_freq is None  # inside: as it is
    with pytest.raises(InvalidRequestError, match=r"'yarn' beyond the window .* own yarn RoPE scaling"):
        plan("yarn", visual=1000, total=200_000, own=own)
    with pytest.raises(InvalidRequestError, match="own dynamic RoPE"):
        plan("visual-yarn", visual=10_000, total=12_000, own=OwnRope("dynamic", 2.0, 4096), visual_window=4608)
    pi = plan("visual-pi", visual=9216, total=9300, own=own, visual_window=4608)  # positions only: composes
    assert pi.inv_freq is None and pi.position_scale == 2.0


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_type": "linear", "factor": 2.5},
        {"rope_type": "dynamic", "factor": 2.0},
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
    ],
)
def test_extend_none_equals_transformers_for_each_scaling_a_config_can_carry(tiny_checkpoints, tmp_path, rope):
    """A tiny LLaVA-NeXT-Video whose config carries the scaling, 64 positions long so that the
    prompt (about 140 tokens) is past them: transformers' own rotary must be what runs."""
    import shutil

    from longvid.models import load

    folder = tmp_path / "scaled"
    shutil.copytree(tiny_checkpoints["llava_next_video"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 64
    config["text_config"]["rope_parameters"] = {**rope, "rope_theta": 10_000.0}
    (folder / "config.json").write_text(json.dumps(config))
    llm = load(folder)
    assert llm.adapter.own_rope().rope_type == rope["rope_type"]
    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    visual = llm.encode_video(frames, frames=8)
    layout = llm.layout("what colour is the square ?", visual, "none")
    logits, _ = llm.prefill(layout, all_logits=True)
    ad = llm.adapter
    before, after = ad.prompt_ids("what colour is the square ?")
    ids = torch.tensor([before + [ad.config.video_token_id] * layout.spans[1].length + after])
    with torch.inference_mode():
        ref = ad.model(input_ids=ids, pixel_values_videos=ad.pixels(frames).values[None]).logits[0]
    assert layout.length > 64
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)


def test_the_pooling_label_is_the_checkpoints(capsys, hub_dirs):
    """`longvid models` said bilinear (the base class's) for LLaVA-NeXT-Video, whose config
    says average; `inspect` reads the checkpoint's own."""
    from longvid.models.checkpoint.describe import describe
    from tests.support import run

    code, out, _ = run(capsys, "models")
    row = next(line for line in out.splitlines() if line.startswith("| llava_next_video |"))
    assert code == 0 and row.rstrip().endswith("| average |")
    assert describe(hub_dirs["llava_next_video"])["pooling_op"] == "average"
