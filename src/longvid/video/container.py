"""Opening video files, probing them, and indexing their frames (PyAV, no decoding).

A *frame index* is the presentation timeline of the video stream, read by demuxing packets
only (cheap: no pixel is decoded). Frame ``i`` is the i-th frame in presentation order; its
timestamp is ``(pts[i] - pts[0]) * time_base`` seconds, so the first frame is at 0.0 s.
Decoded frames are identified by their pts, never by counting, so a seek that lands
somewhere unexpected can never shift the returned frames by one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from longvid.errors import EmptyVideoError, NotAVideoError, NoVideoStreamError, VideoNotFoundError

# Keyframe spacing is estimated from the first packets only; demuxing them costs milliseconds.
_PROBE_PACKETS = 2000


# FFmpeg decoders and demuxers that turn text (ANSI art, .txt, binary text) into frames
TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf", "tty"})
TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "idf", "adf"})


def open_container(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` for reading; every failure becomes a typed one-line error."""
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(p, "no such file")
    if p.is_dir():
        raise NotAVideoError(p, "is a directory, not a video file")
    if p.stat().st_size == 0:
        raise NotAVideoError(p, "file is empty (0 bytes)")
    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except PermissionError as e:
        raise NotAVideoError(p, "permission denied") from e
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise NotAVideoError(p, f"not a readable video ({_ffmpeg_reason(e)})") from e
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        found = f"streams: {', '.join(kinds)}" if kinds else "the file holds no streams"
        raise NoVideoStreamError(p, f"no video stream ({found})")
    codec = container.streams.video[0].codec_context.name
    if codec in TEXT_CODECS or container.format.name in TEXT_FORMATS:
        container.close()  # FFmpeg renders text files as "video"; nobody means them as one
        raise NotAVideoError(p, f"a text file, not a video (FFmpeg would draw it as {codec} text)")
    return container


def _ffmpeg_reason(e: Exception) -> str:
    reason = getattr(e, "strerror", None) or str(e)
    return reason.rstrip(".").lower()


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, as read from its container (``probe``) or its full index."""

    path: str
    duration: float  # seconds, first frame to the end of the last one
    fps: Fraction  # average frame rate
    frame_count: int
    frame_count_exact: bool  # False when derived from duration x fps (webm/mkv often)
    width: int
    height: int
    codec: str
    pix_fmt: str | None
    keyframe_interval: float | None  # mean frames between keyframes; None if unknown

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = float(self.fps)
        d["fps_fraction"] = f"{self.fps.numerator}/{self.fps.denominator}"
        return d


@dataclass(frozen=True, eq=False)
class FrameIndex:
    """Presentation timeline of one video stream, from demuxing (no decoding)."""

    pts: np.ndarray  # (F,) int64, sorted, unique
    keyframes: np.ndarray  # (K,) int64 frame indices of keyframes, sorted
    time_base: Fraction
    frame_duration: float  # seconds, median spacing of frames
    header_frames: int  # what the container claims (0 when it says nothing)

    def __len__(self) -> int:
        return len(self.pts)

    def times(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Seconds from the first frame, for ``indices`` (all frames if None)."""
        pts = self.pts if indices is None else self.pts[np.asarray(indices, dtype=np.int64)]
        return (pts - self.pts[0]).astype(np.float64) * float(self.time_base)

    def lookup(self, pts: int) -> int:
        """Frame index of a decoded frame's pts, or -1 when it is not on the timeline."""
        i = int(np.searchsorted(self.pts, pts))
        return i if i < len(self.pts) and self.pts[i] == pts else -1

    def keyframe_before(self, indices: np.ndarray) -> np.ndarray:
        """Index of the last keyframe at or before each frame (-1: none, decode from start)."""
        pos = np.searchsorted(self.keyframes, indices, side="right") - 1
        return np.where(pos >= 0, self.keyframes[np.maximum(pos, 0)], -1)

    def keyframe_after(self, indices: np.ndarray) -> np.ndarray:
        """Index of the first keyframe at or after each frame (-1: none)."""
        pos = np.searchsorted(self.keyframes, indices, side="left")
        ok = pos < len(self.keyframes)
        return np.where(ok, self.keyframes[np.minimum(pos, len(self.keyframes) - 1)], -1)

    def frame_at(self, seconds: np.ndarray) -> np.ndarray:
        """Index of the frame on screen at each time (the last one starting at or before it)."""
        # Half a microsecond of slack: 1/29.97 s printed and parsed back must hit its frame.
        return np.searchsorted(self.times(), np.asarray(seconds) + 5e-7, side="right") - 1

    @property
    def duration(self) -> float:
        return float(self.times()[-1]) + self.frame_duration


def _build_index(path: str | Path) -> FrameIndex:
    with open_container(path) as container:
        stream = container.streams.video[0]
        pts_list: list[int] = []
        key_pts: list[int] = []
        try:
            for packet in container.demux(stream):
                # size 0: the flush packet at the end; discard: cut by an edit list, never shown
                if packet.size == 0 or packet.is_discard:
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    continue
                pts_list.append(ts)
                if packet.is_keyframe:
                    key_pts.append(ts)
        except av.FFmpegError:
            pass  # a truncated or damaged tail: index what could be read
        if not pts_list:
            raise EmptyVideoError(path, "the video stream holds no frames")
        pts = np.unique(np.asarray(pts_list, dtype=np.int64))
        keys = np.searchsorted(pts, np.unique(np.asarray(key_pts, dtype=np.int64)))
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 1000)
        if len(pts) > 1:
            frame_duration = float(np.median(np.diff(pts))) * float(time_base)
        else:
            rate = stream.average_rate or stream.guessed_rate or 25
            frame_duration = 1.0 / float(rate)
        return FrameIndex(
            pts=pts,
            keyframes=keys.astype(np.int64),
            time_base=time_base,
            frame_duration=frame_duration,
            header_frames=int(stream.frames or 0),
        )


class _IndexCache:
    """Indexes of recently read files, keyed by path, size and mtime (a rewrite invalidates)."""

    def __init__(self, capacity: int = 32) -> None:
        self._items: OrderedDict[tuple, FrameIndex] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, path: str | Path) -> FrameIndex:
        p = Path(path)
        try:
            st = p.stat()
            key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        except OSError:
            return _build_index(p)  # raises the right typed error
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        index = _build_index(p)
        with self._lock:
            self._items[key] = index
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return index


_CACHE = _IndexCache()


def truncation(path: str | Path, index: FrameIndex) -> str | None:
    """What a file whose header promises more frames than it holds should say about it."""
    if index.header_frames > len(index):
        return (
            f"{path}: container lists {index.header_frames} frames but only {len(index)} are readable (truncated file?)"
        )
    return None


def frame_index(path: str | Path) -> FrameIndex:
    """The frame index of ``path`` (demuxed once, then cached while the file is unchanged)."""
    return _CACHE.get(path)


def probe(path: str | Path, exact: bool = False) -> VideoInfo:
    """Describe a video. Cheap by default (header + first packets); ``exact=True`` indexes
    every packet so the frame count and keyframe spacing are exact."""
    with open_container(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        fps = Fraction(stream.average_rate or stream.guessed_rate or 0)
        codec = ctx.name
        pix_fmt = ctx.format.name if ctx.format is not None else None
        width, height = ctx.width, ctx.height
        header_frames = int(stream.frames or 0)
        duration = _header_duration(container, stream)
        key_gaps = None if exact else _keyframe_gaps(container, stream)
    if exact:
        index = frame_index(path)
        if not fps:
            fps = Fraction(1 / index.frame_duration).limit_denominator(1001)
        interval = float(np.diff(index.keyframes).mean()) if len(index.keyframes) > 1 else None
        duration, count, exact_count, key_gaps = index.duration, len(index), True, interval
    elif header_frames > 0:
        count, exact_count = header_frames, True
    elif duration is not None and fps:
        count, exact_count = max(1, round(duration * float(fps))), False
    else:
        count, exact_count = len(frame_index(path)), True
    if duration is None:
        duration = count / float(fps) if fps else 0.0
    return VideoInfo(
        path=str(path),
        duration=duration,
        fps=fps,
        frame_count=count,
        frame_count_exact=exact_count,
        width=width,
        height=height,
        codec=codec,
        pix_fmt=pix_fmt,
        keyframe_interval=key_gaps,
    )


def _header_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _keyframe_gaps(container, stream) -> float | None:
    """Mean packets between keyframes over the first packets (None if < 2 keyframes seen)."""
    keys: list[int] = []
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= _PROBE_PACKETS:
                break
            if packet.size and packet.is_keyframe:
                keys.append(n)
    except av.FFmpegError:
        pass
    if len(keys) < 2:
        return None
    return float(np.diff(keys).mean())
