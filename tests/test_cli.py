"""The command line as a user runs it: outputs, files, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
        (["synth", "--out", "x.mp4", "--minutes", "0"], "--minutes must be > 0"),
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
