"""The command line as a user runs it: outputs, files, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from longvid.errors import InvalidRequestError
from longvid.video import read_index_stamp
from tests.support import SAMPLE, run


def test_info_json(capsys, video_dir):
    code, out, _ = run(capsys, "info", video_dir / "h264_bframes_2997.mp4", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["frame_count"] == 600 and info["fps_fraction"] == "30000/1001"
    code, out, _ = run(capsys, "info", video_dir / "vp9.webm")
    assert code == 0 and "estimated" in out


def test_frames_npz_and_sheet(capsys, video_dir, tmp_path):
    npz, sheet = tmp_path / "f.npz", tmp_path / "sheet.png"
    code, out, _ = run(
        capsys, "frames", video_dir / "h264_longgop.mp4", "-n", 12, "--size", "160x120", "--out", npz, "--sheet", sheet
    )
    assert code == 0 and "12 frames 160x120" in out
    data = np.load(npz)
    assert data["frames"].shape == (12, 120, 160, 3) and data["frames"].dtype == np.uint8
    assert data["indices"].tolist() == np.linspace(0, 599, 12).round().astype(int).tolist()
    assert [read_index_stamp(f) for f in data["frames"]] == data["indices"].tolist()
    np.testing.assert_allclose(data["timestamps"], data["indices"] / 30, atol=1e-3)
    with Image.open(sheet) as im:
        assert im.width > 4 * 240 and im.height > 2 * 180  # a grid of 12 thumbnails


def test_frames_json_by_fps(capsys, video_dir):
    code, out, _ = run(capsys, "frames", video_dir / "vp9.webm", "--fps", "0.5", "--max-frames", "5", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["frames"] == 5 and len(summary["timestamps"]) == 5


def test_synth_writes_video_and_truth(capsys, tmp_path):
    out_path = tmp_path / "s.mp4"
    code, out, _ = run(capsys, "synth", "--minutes", "0.1", "--out", out_path, "--seed", "5", "--events", "3")
    assert code == 0 and out_path.exists()
    truth = json.loads(Path(str(out_path) + ".json").read_text())
    assert len(truth["events"]) == 3 and truth["num_frames"] == 60
    code, out, _ = run(capsys, "info", out_path, "--json")
    assert json.loads(out)["frame_count"] == 60


@pytest.mark.parametrize(
    "args,needle",
    [
        (["info", "missing.mp4"], "missing.mp4: no such file"),
        (["frames", "SAMPLE", "-n", "0"], "must be >= 1"),
        (["frames", "SAMPLE", "--indices", "1,99999"], "out of range"),
        (["frames", "SAMPLE", "-n", "5000", "--strict"], "5000 frames requested"),
        (["frames", "SAMPLE", "-n", "3", "--size", "big"], "--size must be"),
        (["synth", "--out", "x.mp4", "--minutes", "0"], "--minutes must be a number > 0"),
    ],
)
def test_errors_are_one_line(capsys, args, needle):
    args = [str(SAMPLE) if a == "SAMPLE" else a for a in args]
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.startswith("longvid: error: ") and needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_not_a_video_via_console_script(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    exe = Path(sys.executable).with_name("longvid")
    proc = subprocess.run([str(exe), "frames", str(bad), "-n", "4"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"longvid: error: {bad}: not a readable video (invalid data found when processing input)"
    )


def test_bundled_sample_is_readable(capsys):
    code, out, _ = run(capsys, "info", SAMPLE, "--json")
    info = json.loads(out)
    assert code == 0 and info["frame_count"] == 960 and info["width"] == 256


# every command, with inputs a user gets wrong: one line on stderr, exit code 2, no traceback
# (docs/reliability.md lists these with what each gets)
BAD_INPUTS = [
    (["info", "{tmp}/missing.mp4"], "no such file"),
    (["frames", SAMPLE, "--fps", "nan"], "fps must be a positive number"),
    (["frames", SAMPLE, "--fps", "inf"], "fps must be a positive number"),
    (["frames", SAMPLE, "-n", "2", "--size", "100000"], "larger than 8192 pixels a side"),
    (["frames", SAMPLE, "-n", "2", "--size", "1x100000"], "larger than 8192 pixels a side"),
    (["frames", SAMPLE, "-n", "2", "--size", "big"], "--size must be WxH"),
    (["frames", SAMPLE, "--indices", "99999999999999999999"], "out of range"),
    (["frames", SAMPLE, "--timestamps", "nan"], "nan or inf"),
    (["frames", SAMPLE, "-n", "2", "--fast", "--tolerance", "-1"], "tolerance must be >= 0"),
    (["frames", SAMPLE, "-n", "2", "--out", "/proc/x.npz"], "/proc/x.npz"),
    (["frames", SAMPLE, "-n", "2", "--sheet", "{tmp}/x.foo"], "not an image file name"),
    (["synth", "--out", "{tmp}/x.mp4", "--codec", "h265", "--minutes", "0.01"], "no 'h265' encoder"),
    (["synth", "--out", "{tmp}/x.mp4", "--fps", "abc"], "--fps must be a number"),
    (["synth", "--out", "{tmp}/x.mp4", "--minutes", "-1"], "--minutes must be a number > 0"),
    (["ask", SAMPLE, "q", "--device", "bogus"], "unknown device 'bogus'"),
    (["ask", SAMPLE, "q", "--kv-bits", "3"], "unknown kv_bits 3"),
    (["ask", SAMPLE, "q", "--pooling", "progressive", "--anchors", "sometimes"], "unknown anchors"),
    (["ask", SAMPLE, "q", "--rearrange", "shuffle"], "unknown rearrange 'shuffle'"),
    (["ask", "{tmp}/notes.txt", "q"], "a text file, not a video"),
    (["tiny", "nofamily", "{tmp}/t"], "no tiny builder"),
    (["inspect", "--model", "{tmp}/nothing"], "{tmp}/nothing"),
    (["prepare", SAMPLE, "q", "--model", "{tmp}/nothing", "--out", "{tmp}/o.safetensors"], "{tmp}/nothing"),
    (["probe", "--task", "nope", "--frames", "4"], "unknown probe task"),
    (["probe", "--depths", "2", "--frames", "4"], "--depths must lie in [0, 1]"),
    (["probe", "--frames", "a,b"], "comma-separated list of ints"),
    (["profile", "--frames", "x"], "comma-separated list of ints"),
    (["eval", "--bench", "nope"], "--bench must be one of"),
    (["eval", "--bench", "mlvu"], "--data DIR is needed"),
    (["testbed", "card", "--model", "{tmp}"], "no card.json"),
    (["encoder", "train", "{tmp}/missing.toml"], "no such config file"),
    (["encoder", "eval", "{tmp}/nockpt", "--manifest", "{tmp}/m.jsonl"], "no encoder checkpoint"),
    (["encoder", "synth", "{tmp}/s", "--n", "0"], "need n >= 1"),
    # found by trying (issue: nothing wrong silently accepted, no traceback left)
    (["synth", "--out", "{tmp}/x.mp4", "--fps", "0"], "--fps must be > 0"),
    (["synth", "--out", "{tmp}/x.mp4", "--width", "0"], "--width must be an even number"),
    (["synth", "--out", "{tmp}/x.mp4", "--minutes", "nan"], "--minutes must be a number > 0"),
    (["synth", "--out", "{tmp}"], "--out must name a video file"),
    (["probe", "--depths", "1:0:0.25", "--frames", "4"], "start <= stop"),
    (["serve", "--max-upload-mb", "nan"], "--max-upload-mb must be a number > 0"),
    (["serve", "--device", "bogus"], "unknown device 'bogus'"),
    (["serve", "--max-held-mb", "1", "--max-upload-mb", "8"], "--max-held-mb must be"),
    (["prepare", SAMPLE, "q", "--model", "{weights}", "--out", "{tmp}"], "must name a .safetensors file"),
    (["frames", SAMPLE, "-n", "120", "--size", "8000x8000"], "would take"),
    (["ask", SAMPLE, "q", "-q", ""], "a question must not be empty"),
    (["ask", SAMPLE, "q", "--visual-window", "0"], "visual_window must be >= 1"),
    (["ask", SAMPLE, "q", "--frames", "8", "--fps", "2"], "frames or fps, not both"),
    (["ask", SAMPLE, "q", "--total-pixels", "1000"], "apply to Qwen's resize rule"),
    (["ask", SAMPLE, "q", "--model", "{damaged}"], "model.safetensors is damaged or cut short"),
    (["encoder", "train", "{tmp}/list.yaml"], "a config is a mapping"),
    (["encoder", "train", "{tmp}/binary.toml"], "not a text file"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(map(str, a[:3])) for a, _ in BAD_INPUTS])
def test_bad_inputs_are_one_line_never_a_traceback(capsys, tmp_path, args, message):
    import shutil

    from longvid.bundled import TESTBED_WEIGHTS

    (tmp_path / "notes.txt").write_text("these are my notes, not a video\n" * 400)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "binary.toml").write_bytes(bytes(range(128, 256)))
    damaged = tmp_path / "damaged"
    if "{damaged}" in args:  # a checkpoint whose weights file was cut short (a partial download)
        shutil.copytree(TESTBED_WEIGHTS, damaged)
        weights = damaged / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    swap = {"{tmp}": str(tmp_path), "{weights}": str(TESTBED_WEIGHTS), "{damaged}": str(damaged)}

    def fill(a):
        a = str(a)
        for k, v in swap.items():
            a = a.replace(k, v)
        return a

    code, out, err = run(capsys, *[fill(a) for a in args])
    assert code == 2, (out, err)
    assert "Traceback" not in err and err.startswith("longvid: error: ") and err.count("\n") == 1, err
    assert message.replace("{tmp}", str(tmp_path)) in err


def test_usage_errors_name_the_option(capsys):
    code, _, err = run(capsys, "serve", "--port", "99999")
    assert code == 2 and "Traceback" not in err and "--port" in err


def test_tiny_then_ask(capsys, tmp_path):
    """docs/usage.md: a tiny random checkpoint, then ask with an extension and progressive
    pooling (8 frames instead of the doc's 64)."""
    code, out, _ = run(capsys, "tiny", "llava_onevision", tmp_path / "tiny-ov")
    assert code == 0 and "tiny random llava_onevision" in out
    code, out, err = run(capsys, "ask", SAMPLE, "what colour is the square?", "--model", tmp_path / "tiny-ov",
                         "--frames", 8, "--extend", "visual-yarn", "--pooling", "progressive", "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["frames"] == 8 and report["extend"] == "visual-yarn" and report["pooling"].startswith("progressive")


def test_options_that_would_do_nothing_are_refused(capsys, tmp_path):
    """Found by trying: --min-frames without --fps sampled at 2 fps (240 frames), prepare took
    extension options it ignores, --out x.npz got safetensors bytes."""
    import longvid

    code, _, err = run(capsys, "ask", SAMPLE, "q", "--min-frames", "4")
    assert code == 2 and "give fps too" in err
    code, _, err = run(capsys, "prepare", SAMPLE, "q", "--model", str(tmp_path), "--out", tmp_path / "x.npz")
    assert code == 2 and "must name a .safetensors file" in err
    from longvid.bundled import TESTBED_WEIGHTS

    with pytest.raises(InvalidRequestError, match="prepare takes frames"):
        longvid.prepare(TESTBED_WEIGHTS, SAMPLE, "q", extend="visual-yarn")
