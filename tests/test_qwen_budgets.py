"""Qwen sampled by fps under pixel budgets exactly as qwen-vl-utils samples it: the frame count
(``smart_nframes``), each frame's cap from the total, its size (``smart_resize``), the frame
indices; on the real Qwen2-VL and Qwen2.5-VL folders, for landscape, portrait, tiny and long
videos. The reference below is written from qwen-vl-utils' formulas, not from longvid's code."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from longvid.errors import InvalidRequestError
from longvid.models.inference import sampling
from longvid.models.inference.request import AskOptions
from longvid.video.container import VideoInfo


def reference(total: int, video_fps: float, width: int, height: int, ele: dict, f: int = 28) -> tuple[int, int, int]:
    """(frames, height, width) that qwen-vl-utils' fetch_video gives (factor f: 28 for Qwen2-VL
    and 2.5-VL, 32 for Qwen3-VL, whose version counts pixels as tokens x 32 x 32; frames in 2s)."""

    def rnd(x, k):
        return round(x / k) * k

    def ceil(x, k):
        return math.ceil(x / k) * k

    def floor(x, k):
        return math.floor(x / k) * k

    if "nframes" in ele:
        n = rnd(ele["nframes"], 2)
    else:
        lo, hi = ceil(ele.get("min_frames", 4), 2), floor(ele.get("max_frames", min(768, total)), 2)
        n = floor(min(min(max(total / video_fps * ele.get("fps", 2.0), lo), hi), total), 2)
    min_pixels = ele.get("min_pixels", 128 * f * f)
    total_pixels = ele.get("total_pixels", 128000 * f * f * 0.9)
    max_pixels = max(min(768 * f * f, total_pixels / n * 2), int(min_pixels * 1.05))
    max_pixels = min(ele.get("max_pixels", max_pixels), max_pixels)
    h, w = max(f, rnd(height, f)), max(f, rnd(width, f))
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h, w = floor(height / beta, f), floor(width / beta, f)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = ceil(height * beta, f), ceil(width * beta, f)
    return n, h, w


CASES = {  # name: (frames in the file, its fps, width, height, the request)
    "30 min 720p": (54_000, 30.0, 1280, 720, {"fps": 2.0}),
    "10 min portrait": (15_000, 25.0, 720, 1280, {"fps": 1.0}),
    "tiny": (7, 25.0, 64, 48, {"fps": 2.0}),
    "long, a budget": (216_000, 60.0, 1920, 1080, {"fps": 0.5, "max_frames": 128, "total_pixels": 20_000_000}),
    "odd limits": (3_001, 29.97, 853, 480, {"fps": 4.0, "min_frames": 9, "max_frames": 101, "min_pixels": 50_000}),
    "a user cap": (9_000, 30.0, 1280, 720, {"fps": 2.0, "max_pixels": 200_000}),
}


def fake_probe(total, fps, width, height):
    return lambda path: VideoInfo(str(path), total / fps, Fraction(fps).limit_denominator(1001), total, True, width,
                                  height, "h264", "yuv420p", 30.0)  # fmt: skip


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_5"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_frames_and_sizes_equal_qwen_vl_utils(hub_dirs, monkeypatch, tmp_path, family, case):
    from longvid.models.checkpoint.registry import read_adapter

    total, fps, width, height, ele = CASES[case]
    monkeypatch.setattr(sampling, "probe", fake_probe(total, fps, width, height))
    adapter = read_adapter(hub_dirs[family])
    own = adapter.spec
    plan = sampling.plan_sampling(adapter, tmp_path / "v.mp4", AskOptions(**ele))
    f = adapter.spec.factor
    n, h, w = reference(total, fps, width, height, ele, f)
    assert (plan.frames, plan.size) == (n, (w, h))
    # the view resizes any frame of this video to that size, and counts tokens from it
    assert plan.adapter.spec.output_size(width, height) == (w, h)
    assert plan.adapter.native_grid(width, height) == (h // f, w // f)
    assert adapter.spec is own and plan.adapter is not adapter  # the shared adapter is untouched
    if case == "30 min 720p" and f == 28:  # the figures
        assert (n, w, h) == (768, 644, 336) and plan.adapter.video_token_count(n, width, height) == 105_984


def test_the_indices_are_the_references_linspace(tiny_checkpoints, real_videos):
    """End to end on a real file: the frames asked at fps 2 are linspace(0, count - 1, n).round()."""
    from longvid.models import load
    from longvid.video import probe

    llm = load(tiny_checkpoints["qwen2_5_vl"])
    video = next(v for v in real_videos if v.name == "bikes.mp4")
    info = probe(video)
    # small pixel limits: the tiny model's patches are 4 pixels, not 14
    answer = llm.ask(video, "what colour ?", fps=2.0, max_frames=8, min_pixels=1024, max_pixels=4096, max_new_tokens=1)
    n, _, _ = reference(info.frame_count, float(info.fps), info.width, info.height, {"fps": 2.0, "max_frames": 8})
    want = np.round(np.linspace(0, info.frame_count - 1, n)).astype(int).tolist()
    assert answer.report.frame_indices == want
    assert answer.report.sampling.startswith(f"fps 2 -> {n} frames")


def test_prepare_with_budgets_on_the_real_qwen25_folder(hub_dirs, real_videos):
    """The official inputs under a budget: grid from the budget's size, time from the sampled fps."""
    import longvid
    from longvid.video import probe

    video = next(v for v in real_videos if v.name == "bigbuckbunny.mp4")
    info = probe(video)
    ele = {"fps": 1.0, "total_pixels": 2_000_000}
    inputs = longvid.prepare(hub_dirs["qwen2_5_vl"], video, "what ?", **ele)
    n, h, w = reference(info.frame_count, float(info.fps), info.width, info.height, ele)
    assert inputs["video_grid_thw"].tolist() == [[n // 2, h // 14, w // 14]]
    sampled_fps = n / info.frame_count * float(info.fps)
    assert float(inputs["second_per_grid_ts"][0]) == pytest.approx(2 / sampled_fps, rel=1e-5)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"frames": 8, "fps": 2.0}, "frames or fps, not both"),
        ({"fps": 0}, "fps must be > 0"),
        ({"fps": 1.0, "min_frames": 9, "max_frames": 4}, "min_frames must be <= max_frames"),
        ({"max_frames": 4}, "give fps too"),
        ({"min_pixels": 0}, "min_pixels must be >= 1"),
    ],
)
def test_bad_budgets_are_one_line(options, message):
    with pytest.raises(InvalidRequestError, match=message):
        AskOptions(**options)


def test_pixel_budgets_are_refused_where_the_family_resizes_its_own_way(tiny_models):
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(InvalidRequestError, match="apply to Qwen's resize rule; llava_onevision"):
        tiny_models["llava_onevision"].ask(frames, "q", total_pixels=10_000)
    with pytest.raises(InvalidRequestError, match="need a video file"):
        tiny_models["qwen2_vl"].ask(frames, "q", fps=2.0)
