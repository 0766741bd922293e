"""`longvid ask` as a user runs it, on tiny checkpoints of every family, with every mode."""

from __future__ import annotations

import json

import pytest

from longvid.extend.rope import EXTEND_MODES
from longvid.models.families import FAMILIES
from tests.support import SAMPLE, run

# every family and every mode through the command line at least once (each pair is covered
# through the library by test_models_behaviour)
CASES = [(FAMILIES[i % len(FAMILIES)], mode) for i, mode in enumerate(sorted(EXTEND_MODES))]
CASES += [(family, "none") for family in FAMILIES if family not in {f for f, _ in CASES}]


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints):
    return tiny_checkpoints


@pytest.mark.parametrize("family,mode", CASES)
def test_ask_every_family_every_mode(capsys, checkpoints, family, mode):
    pooling = "progressive" if mode in ("visual-yarn", "visual-pi") else "uniform"
    code, out, err = run(
        capsys, "ask", SAMPLE, "what colour is the square ?", "--model", checkpoints[family], "--frames", 8,
        "--extend", mode, "--visual-window", 20, "--pooling", pooling, "--max-new-tokens", 3, "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["family"] == family and result["extend"] == mode and result["frames"] == 8
    assert isinstance(result["answer"], str) and result["generated_tokens"] <= 3
    assert result["visual_tokens"] < result["visual_tokens_before_pooling"] or family != "llava_onevision"
    assert result["scale"] == (
        1.0
        if mode in ("none", "linear", "ntk", "dynamic", "yarn")
        else pytest.approx(result["visual_tokens"] / 20, abs=1e-3)
    )
    assert result["frame_indices"][0] == 0 and result["frame_indices"][-1] == 959


def test_ask_table_output(capsys, checkpoints):
    code, out, _ = run(capsys, "ask", SAMPLE, "which shape came first ?", "--model", checkpoints["qwen2_vl"],
                       "--frames", 6, "--max-new-tokens", 2)  # fmt: skip
    assert code == 0
    assert out.startswith("answer:") and "visual tokens" in out and "peak memory" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--frames", "0"], "frames must be >= 1"),
        (["--extend", "rope-magic"], "unknown extend 'rope-magic'"),
        (["--pooling", "progressive", "--low", "64"], "larger than the"),
    ],
)
def test_ask_errors(capsys, checkpoints, args, needle):
    code, _, err = run(capsys, "ask", SAMPLE, "q", "--model", checkpoints["llava_onevision"], *args)
    assert code == 2 and needle in err and err.count("\n") == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_ask_with_every_option(capsys, checkpoints, family):
    rearrange = "none" if family.startswith("qwen") else "interleave"  # Qwen's encoder pairs frames
    code, out, err = run(
        capsys, "ask", SAMPLE, "which shape came first ?", "--model", checkpoints[family], "--frames", 16,
        "--extend", "ntk", "--pooling", "progressive", "--anchors", "fixed", "--kv-bits", 4,
        "--rearrange", rearrange, "--max-new-tokens", 2, "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert (
        result["kv_bits"] == 4 and result["kv_backend"].startswith("blocks (int4") and result["rearrange"] == rearrange
    )
    assert result["pooling"].startswith("progressive") and result["frames"] == 16
