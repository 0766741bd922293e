"""Broken inputs and bad requests: typed errors with one-line messages; never wrong frames."""

from __future__ import annotations

import warnings

import av
import numpy as np
import pytest

from longvid.errors import (
    DecodeError,
    DecodeWarning,
    EmptyVideoError,
    FrameRangeError,
    FrameRangeWarning,
    InvalidRequestError,
    NotAVideoError,
    NoVideoStreamError,
    VideoNotFoundError,
)
from longvid.video import FrameReader, probe, read_index_stamp, sample_frames
from longvid.video.synth import write_stamped_video
from tests.support import truncated_faststart_mp4


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


def test_missing_path(tmp_path):
    with pytest.raises(VideoNotFoundError) as e:
        probe(tmp_path / "nope.mp4")
    assert "nope.mp4" in one_line(e) and "no such file" in one_line(e)


def test_directory(tmp_path):
    with pytest.raises(NotAVideoError, match="directory"):
        sample_frames(tmp_path, 3)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(NotAVideoError, match="empty"):
        probe(p)


@pytest.mark.parametrize(
    "name,content",
    [
        ("random.mp4", np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()),
        ("notes.mp4", b"these are my notes, not a video\n" * 100),
        # FFmpeg reads a .txt as 640x400 "video" through its ANSI decoder: refused as text
        ("notes.txt", b"these are my notes, not a video\n" * 400),
        ("art.ans", b"\x1b[31mred\x1b[0m text " * 500),
    ],
)
def test_not_a_video(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(NotAVideoError) as e:
        sample_frames(p, 4)
    assert name in one_line(e)


def test_truncated_mp4_without_index(tmp_path):
    full = tmp_path / "full.mp4"
    write_stamped_video(full, 120)  # moov atom at the end: cutting the file loses it
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(NotAVideoError) as e:
        probe(cut)
    assert "cut.mp4" in one_line(e)


def test_truncated_faststart_mp4_reads_what_is_there(tmp_path):
    cut = truncated_faststart_mp4(tmp_path, 300)  # the header promises 300 frames
    with pytest.warns(DecodeWarning, match="truncated"):
        reader = FrameReader(cut)
    assert 0 < len(reader.index) < 300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecodeWarning)
        frames = reader.sample(10)
    assert [read_index_stamp(f) for f in frames.array] == frames.indices.tolist()


def test_audio_only(tmp_path):
    p = tmp_path / "voice.m4a"
    with av.open(str(p), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for pkt in s.encode(frame):
            c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    with pytest.raises(NoVideoStreamError, match=r"no video stream.*audio"):
        probe(p)


def test_video_stream_without_frames(tmp_path):
    # FFmpeg drops a track with no samples when reading mp4, so this is "no video stream"
    p = tmp_path / "noframes.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()
    with pytest.raises((EmptyVideoError, NoVideoStreamError)) as e:
        sample_frames(p, 2)
    assert "noframes.mp4" in one_line(e)


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    p = tmp_path_factory.mktemp("small") / "small.mp4"
    write_stamped_video(p, 90, gop=15)
    return p


def test_more_frames_than_exist_clamps_or_fails(small_video):
    with pytest.warns(FrameRangeWarning, match="200 frames requested but the video has 90"):
        frames = sample_frames(small_video, 200)
    assert frames.indices.tolist() == list(range(90))
    with pytest.raises(FrameRangeError, match="200 frames requested"):
        sample_frames(small_video, 200, strict=True)


def test_index_and_time_out_of_range(small_video):
    with pytest.raises(FrameRangeError, match="frame index 90 out of range"):
        sample_frames(small_video, indices=[0, 90])
    with pytest.raises(FrameRangeError, match="past the end"):
        sample_frames(small_video, timestamps=[1.0, 99.0], strict=True)
    with pytest.warns(FrameRangeWarning):
        frames = sample_frames(small_video, timestamps=[99.0])
    assert frames.indices.tolist() == [89]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n=0), "must be >= 1"),
        (dict(n=-3), "must be >= 1"),
        (dict(fps=0), "fps must be a positive number"),
        (dict(n=3, fps=1.0), "exactly one of"),
        (dict(), "exactly one of"),
        (dict(indices=[]), "no frame indices"),
        (dict(timestamps=[-1.0]), ">= 0"),
        (dict(n=2, size=(0, 10)), "size must be positive"),
        (dict(fps=1.0, max_frames=0), "max_frames must be >= 1"),
    ],
)
def test_bad_requests(small_video, kwargs, match):
    n = kwargs.pop("n", None)
    with pytest.raises(InvalidRequestError, match=match):
        sample_frames(small_video, n, **kwargs)


def _corrupt_packet(src, dst, nth_packet: int) -> int:
    """Zero the bytes of the nth packet (decode order); return that frame's pts."""
    data = bytearray(src.read_bytes())
    with av.open(str(src)) as c:
        packets = [(p.pts, p.pos, p.size) for p in c.demux(video=0) if p.size]
    pts, pos, size = packets[nth_packet]
    data[pos : pos + size] = bytes(size)
    dst.write_bytes(bytes(data))
    return pts


def test_undecodable_frames_are_skipped_and_reported_never_wrong(tmp_path):
    src = tmp_path / "ok.mp4"
    write_stamped_video(src, 150, gop=30, bframes=2)
    bad = tmp_path / "bad.mp4"
    _corrupt_packet(src, bad, 70)  # a P/B frame inside the third GOP (frames 60..89)
    with pytest.warns(DecodeWarning, match="could not be decoded"):
        frames = sample_frames(bad, indices=list(range(0, 150, 5)))
    # every returned frame is the one it claims to be ...
    assert [read_index_stamp(f) for f in frames.array] == frames.indices.tolist()
    # ... the damaged GOP's frames are reported, the others delivered
    assert frames.skipped and set(frames.skipped) <= set(range(60, 90))
    assert set(frames.indices.tolist()) >= set(range(0, 60, 5)) | set(range(90, 150, 5))
    with pytest.raises(DecodeError, match="could not be decoded"):
        sample_frames(bad, indices=list(range(60, 90, 3)), strict=True)
