"""Exact and fast frame sampling with PyAV.

How the exact path decodes (a *plan* over the frame index, no pixels read to make it):
targets are visited in order; reaching target ``t`` costs either ``t - pos`` frames by
decoding forward from the last decoded frame ``pos``, or ``t - k(t)`` frames plus a seek,
where ``k(t)`` is the keyframe before ``t``. The cheaper one is taken. Sparse targets thus
become seek-and-decode-forward, dense ones (or long GOPs) one sequential pass, and mixes
get both. Once every packet a segment needs has gone into the decoder, the decoder is
drained instead of fed further, so no frame past the last target is decoded.

The fast path moves each target to the nearest keyframe within a tolerance (a keyframe
decodes alone) and then runs the same exact machinery on the moved targets.

Frames come out as uint8 RGB, resized by swscale during conversion when asked, written
into one preallocated array: the decoded video is never held in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from longvid.errors import (
    DecodeError,
    DecodeWarning,
    InvalidRequestError,
)
from longvid.progress import bar
from longvid.video.container import frame_index, probe, truncation
from longvid.video.decoder import Decoder as _Decoder
from longvid.video.frames import DecodeStats, Frames
from longvid.video.parallel import decode_parallel, default_workers, drop_tainted
from longvid.video.plan import (
    minimum_decodes,
    plan_segments,
    select_indices,
    snap_to_keyframes,
)

Size = int | tuple[int, int] | None


# larger sides than 8K video has are a typo, and would ask for gigabytes per frame
MAX_SIDE = 8192


def _target_size(width: int, height: int, size: Size) -> tuple[int, int]:
    if size is None:
        return width, height
    if isinstance(size, int):
        if size < 1:
            raise InvalidRequestError(f"size must be >= 1 (got {size})")
        scale = size / min(width, height)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
    else:
        w, h = size
        if w < 1 or h < 1:
            raise InvalidRequestError(f"size must be positive (got {w}x{h})")
    if max(w, h) > MAX_SIDE:
        raise InvalidRequestError(f"size {w}x{h} is larger than {MAX_SIDE} pixels a side")
    return int(w), int(h)


def check_room(frames: int, width: int, height: int) -> None:
    """Refuse, before anything is allocated, frames that would not fit in the memory free now
    (the array is frames x height x width x 3 bytes; decoding needs a little more)."""
    import psutil

    need = frames * width * height * 3
    free = psutil.virtual_memory().available
    if need > 0.8 * free:
        raise InvalidRequestError(
            f"{frames} frames of {width}x{height} would take {need / 2**30:.1f} GiB but {free / 2**30:.1f} GiB is "
            "free: ask for fewer frames or a smaller size"
        )


class FrameReader:
    """Sampling from one video file. Cheap to create; the frame index is cached per file.

    >>> reader = FrameReader("talk.mp4")
    >>> frames = reader.sample(n=64, size=384)          # exact, resized on decode
    >>> for chunk in reader.iter_chunks(n=256, chunk=32): ...
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.index = frame_index(self.path)
        self.info = probe(self.path, exact=True)
        note = truncation(self.path, self.index)
        if note:
            warnings.warn(note, DecodeWarning, stacklevel=2)

    # ---- requests

    def targets(self, **request) -> np.ndarray:
        """Frame indices for a request (``n``, ``indices``, ``fps``+``max_frames``, or
        ``timestamps``), in request order; see ``select_indices``."""
        return select_indices(self.index, self.path, **request)

    def sample(
        self,
        n: int | None = None,
        *,
        indices: Sequence[int] | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
        timestamps: Sequence[float] | None = None,
        size: Size = None,
        fast: bool = False,
        tolerance: float | None = None,
        strict: bool = False,
        threads: bool | None = None,
        progress: bool = False,
        workers: int | None = None,
    ) -> Frames:
        """Decode the requested frames into one (N, H, W, 3) uint8 array.

        ``size``: ``(W, H)`` exactly, or an int for the shorter side (aspect kept).
        ``fast``: allow each frame to be replaced by the nearest keyframe within
        ``tolerance`` seconds (default: half the gap between requested frames); the
        returned ``indices`` say which frames were really used.
        ``strict``: raise instead of clamping over-long requests or skipping frames that
        fail to decode. ``threads``: FFmpeg frame threading (default: on for plans that
        are mostly sequential, where it helps; off for seek-heavy ones, where it does not).
        ``workers``: processes decoding the plan's segments side by side (``video.parallel``;
        default: from the cores and the plan, 1 where it does not pay). The frames are the same.
        """
        request = dict(n=n, indices=indices, fps=fps, max_frames=max_frames, timestamps=timestamps)
        requested, sources, unique, (out_w, out_h) = self._resolve(request, size, fast, tolerance, strict)
        stats = DecodeStats()
        check_room(len(unique), out_w, out_h)
        if workers is None:
            workers = default_workers(len(plan_segments(self.index, unique)), minimum_decodes(self.index, unique))
        if workers < 1:
            raise InvalidRequestError(f"workers must be >= 1 (got {workers})")
        meter = bar(progress, len(unique), f"decode {self.path.name}", "frame")
        if workers > 1 and len(unique) > 1:
            array, got = decode_parallel(self.path, unique, (out_w, out_h), workers, threads, stats)
            meter.update(len(unique))
        else:
            array = np.empty((len(unique), out_h, out_w, 3), dtype=np.uint8)
            got = np.zeros(len(unique), dtype=bool)
            if threads is None:  # frame threading pays only on long forward runs; each seek flushes it
                threads = len(plan_segments(self.index, unique)) <= max(1, len(unique) // 16)
            for attempt_threads in (threads, False):
                got[:] = False
                bad: set[int] = set()
                for idx, rgb in self._decode(unique, (out_w, out_h), attempt_threads, stats, bad):
                    j = int(np.searchsorted(unique, idx))
                    array[j] = rgb
                    got[j] = True
                    if attempt_threads == threads:
                        meter.update(1)
                # frame threading reports a damaged packet some packets late, so the GOP it
                # taints depends on timing: a damaged file is decoded again without it, as the
                # parallel workers decode, and the same frames come back either way
                if not (attempt_threads and stats.decode_errors):
                    break
            drop_tainted(unique, got, bad)
        meter.close()
        # Put frames back in request order (repeats copy); drop frames that failed.
        order = np.searchsorted(unique, sources)
        keep = got[order]
        skipped = tuple(sorted({int(i) for i in requested[~keep]}))
        if skipped:
            self._report_skipped(skipped, strict)
        order = order[keep]
        # The usual request (sorted, no repeats, nothing skipped) needs no copy.
        in_place = len(order) == len(unique) and bool((order == np.arange(len(unique))).all())
        frames_array = array if in_place else array[order]
        indices_out = unique[order]
        return Frames(
            array=frames_array,
            indices=indices_out,
            timestamps=self.index.times(indices_out),
            info=self.info,
            skipped=skipped,
            stats=stats,
        )

    def iter_chunks(
        self,
        n: int | None = None,
        *,
        chunk: int = 16,
        size: Size = None,
        fast: bool = False,
        tolerance: float | None = None,
        strict: bool = False,
        threads: bool | None = None,
        **request,
    ) -> Iterator[Frames]:
        """Stream the requested frames (sorted by index, repeats dropped) as ``Frames`` of
        at most ``chunk`` frames, so a consumer can encode while decoding continues."""
        if chunk < 1:
            raise InvalidRequestError(f"chunk must be >= 1 (got {chunk})")
        _, _, unique, (out_w, out_h) = self._resolve({"n": n, **request}, size, fast, tolerance, strict)
        stats = DecodeStats()
        buf = np.empty((chunk, out_h, out_w, 3), dtype=np.uint8)
        buf_idx: list[int] = []
        produced: set[int] = set()
        for idx, rgb in self._decode(unique, (out_w, out_h), threads, stats):
            buf[len(buf_idx)] = rgb
            buf_idx.append(idx)
            produced.add(idx)
            if len(buf_idx) == chunk:
                yield self._chunk(buf, buf_idx, stats)
                buf_idx = []
        missing = tuple(int(i) for i in unique if int(i) not in produced)
        if missing:
            self._report_skipped(missing, strict)
        if buf_idx:
            yield self._chunk(buf, buf_idx, stats, skipped=missing)

    def _resolve(self, request: dict, size: Size, fast: bool, tolerance: float | None, strict: bool):
        """Requested indices (request order), the frames to decode for them (keyframes in
        fast mode), those sorted without repeats, and the output (W, H)."""
        if tolerance is not None and not tolerance >= 0:
            raise InvalidRequestError(f"tolerance must be >= 0 seconds (got {tolerance})")
        requested = self.targets(strict=strict, **request)
        sources = snap_to_keyframes(self.index, requested, tolerance) if fast else requested
        return requested, sources, np.unique(sources), _target_size(self.info.width, self.info.height, size)

    def _chunk(self, buf: np.ndarray, idx: list[int], stats: DecodeStats, skipped=()) -> Frames:
        indices = np.asarray(idx, dtype=np.int64)
        return Frames(
            array=buf[: len(idx)].copy(),
            indices=indices,
            timestamps=self.index.times(indices),
            info=self.info,
            skipped=tuple(skipped),
            stats=stats,
        )

    def _report_skipped(self, skipped: Sequence[int], strict: bool) -> None:
        shown = ", ".join(str(i) for i in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        message = f"{len(skipped)} requested frame(s) could not be decoded: {shown}"
        if strict:
            raise DecodeError(self.path, message)
        warnings.warn(f"{self.path}: {message}; left out", DecodeWarning, stacklevel=3)

    def _decode(
        self, unique: np.ndarray, out_size: tuple[int, int], threads: bool | None, stats: DecodeStats,
        bad: set[int] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:  # fmt: skip
        """``bad`` (filled): frames found unreliable, also after they were yielded."""
        segments = plan_segments(self.index, unique)
        if threads is None:
            # Frame threading pays only on long forward runs; each seek flushes its pipeline.
            threads = len(segments) <= max(1, len(unique) // 16)
        decoder = _Decoder(self.path, self.index, out_size, threads)
        try:
            for seg in segments:
                yield from decoder.run_segment(seg)
        finally:
            decoder.close()
            if bad is not None:
                bad.update(decoder.bad)
            for k, v in decoder.stats.to_dict().items():
                setattr(stats, k, v)


def sample_frames(path: str | Path, n: int | None = None, **kwargs) -> Frames:
    """``FrameReader(path).sample(n, **kwargs)``: the one-call way to read frames."""
    return FrameReader(path).sample(n, **kwargs)


def iter_frames(path: str | Path, n: int | None = None, **kwargs) -> Iterator[Frames]:
    """``FrameReader(path).iter_chunks(n, **kwargs)``: stream frames in chunks."""
    return FrameReader(path).iter_chunks(n, **kwargs)
