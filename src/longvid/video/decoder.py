"""Running a decode plan on one open container: segments decoded forward from their
keyframe, frames converted to RGB (resized by swscale when asked) and yielded in index order;
packets that fail are counted, their frames left out."""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np

from longvid.video.container import FrameIndex, open_container
from longvid.video.frames import DecodeStats
from longvid.video.plan import Segment


class Decoder:
    """Runs a plan on one open container, yielding (frame index, RGB array) in index order."""

    def __init__(self, path, index: FrameIndex, out_size: tuple[int, int], threads: bool) -> None:
        self.path = path
        self.index = index
        self.container = open_container(path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO" if threads else "SLICE"
        self.codec = self.stream.codec_context
        self.out_w, self.out_h = out_size
        self.stats = DecodeStats()
        self.bad: set[int] = set()  # frames known to be wrong (their GOP lost a packet)

    def close(self) -> None:
        self.container.close()

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return frame.to_ndarray(format="rgb24", width=self.out_w, height=self.out_h, interpolation="AREA")

    def _taint_gop(self, pts: int | None) -> None:
        """A packet failed: every frame of its GOP (and, for a keyframe, of the GOP before,
        whose open-GOP leading frames may reference it) is unreliable."""
        self.stats.decode_errors += 1
        keys = self.index.keyframes
        if pts is None:
            return
        i = int(np.searchsorted(self.index.pts, pts))
        pos = int(np.searchsorted(keys, i, side="right")) - 1
        lo_pos = pos - 1 if pos >= 0 and keys[pos] == i else pos
        lo = int(keys[lo_pos]) if lo_pos >= 0 else 0
        hi = int(keys[pos + 1]) if pos + 1 < len(keys) else len(self.index)
        self.bad.update(range(lo, hi))

    def run_segment(self, seg: Segment) -> Iterator[tuple[int, np.ndarray]]:
        pending = set(seg.targets)
        start = seg.start
        for _attempt in range(3):
            self.stats.segments += 1
            self._seek(start)
            first = min(pending)
            lowest_seen = None
            need_pts = {int(self.index.pts[t]) for t in pending}
            for idx, frame in self._frames_from(need_pts):
                lowest_seen = idx if lowest_seen is None else min(lowest_seen, idx)
                if idx in pending:
                    pending.discard(idx)
                    if not (frame.is_corrupt or idx in self.bad):
                        yield idx, self._rgb(frame)
                    if not pending:
                        return
            overshot = first in pending and lowest_seen is not None and lowest_seen > first
            if not overshot or start <= 0:
                return
            # The seek landed after the first target (the container's own index disagrees
            # with ours): step back one keyframe, and at last to the beginning.
            earlier = int(self.index.keyframe_before(np.array([start - 1]))[0])
            start = earlier if 0 <= earlier < start else -1

    def _seek(self, start: int) -> None:
        target = 0 if start <= 0 else int(self.index.pts[start])
        self.container.seek(target, stream=self.stream, backward=True)
        # a fresh decoder after a seek: nothing buffered or referenced from before it carries
        # over (a damaged GOP decoded earlier must not taint the next segment's frames, or the
        # frames returned would depend on which segments one process decoded before)
        self.codec.flush_buffers()
        self.stats.seeks += 1

    def _frames_from(self, need_pts: set[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decode forward from the current position; stop feeding once all ``need_pts``
        packets are in, then drain the decoder."""
        for packet in self.container.demux(self.stream):
            last = packet.size == 0
            try:
                frames = self.codec.decode(None if last else packet)
                if not last:
                    self.stats.packets_decoded += 1
            except av.FFmpegError:
                self._taint_gop(packet.pts)
                frames = []
            for frame in frames:
                self.stats.frames_decoded += 1
                idx = self.index.lookup(frame.pts) if frame.pts is not None else -1
                if idx >= 0:
                    yield idx, frame
            if last:
                return
            need_pts.discard(packet.pts)
            if not need_pts:
                try:
                    frames = self.codec.decode(None)
                except av.FFmpegError:
                    frames = []
                for frame in frames:
                    self.stats.frames_decoded += 1
                    idx = self.index.lookup(frame.pts) if frame.pts is not None else -1
                    if idx >= 0:
                        yield idx, frame
                return
