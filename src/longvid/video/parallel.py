"""Exact decoding on several processes: the plan's segments (each starts at a keyframe, so
each decodes alone) are split into contiguous runs of about equal decode cost, one per
worker; every worker decodes its runs into one shared-memory array at the frames' final
places, so no frame goes through a pickle. Workers are forked: they inherit the frame index
the parent built, and only run PyAV."""

from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from longvid.video.container import frame_index
from longvid.video.decoder import Decoder
from longvid.video.frames import DecodeStats
from longvid.video.plan import Segment, plan_segments

# below this many frames to decode, process start-up costs more than a second stream saves
PARALLEL_MIN_DECODES = 1000


def default_workers(segments: int, decode_frames: int) -> int:
    """Half the cores (the other half encodes), at most 8 and one per segment; 1 where it
    does not pay (few cores, a short plan)."""
    cores = os.cpu_count() or 1
    if cores < 4 or decode_frames < PARALLEL_MIN_DECODES:
        return 1
    return max(1, min(cores // 2, segments, 8))


def split_segments(segments: list[Segment], workers: int) -> list[list[Segment]]:
    """Contiguous runs of segments of about equal cost (frames from each segment's start to
    its last target)."""
    costs = [seg.targets[-1] - max(seg.start, 0) + 1 for seg in segments]
    share = sum(costs) / workers
    parts: list[list[Segment]] = [[]]
    done = 0.0
    for seg, cost in zip(segments, costs, strict=True):
        if parts[-1] and done + cost / 2 > share * len(parts) and len(parts) < workers:
            parts.append([])
        parts[-1].append(seg)
        done += cost
    return parts


def _decode_part(path, segments, unique, out_size, shm_name, threads):
    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        w, h = out_size
        array = np.ndarray((len(unique), h, w, 3), dtype=np.uint8, buffer=shm.buf)
        decoder = Decoder(Path(path), frame_index(path), out_size, threads)
        got = []
        try:
            for seg in segments:
                for idx, rgb in decoder.run_segment(seg):
                    j = int(np.searchsorted(unique, idx))
                    array[j] = rgb
                    got.append(j)
        finally:
            decoder.close()
        del array
        return got, decoder.stats.to_dict(), sorted(decoder.bad)
    finally:
        shm.close()


def decode_parallel(
    path: Path, unique: np.ndarray, out_size: tuple[int, int], workers: int, threads: bool | None, stats: DecodeStats
) -> tuple[np.ndarray, np.ndarray]:
    """(frames (len(unique), H, W, 3) uint8 in ``unique``'s order, which of them decoded)."""
    segments = plan_segments(frame_index(path), unique)
    parts = split_segments(segments, min(workers, len(segments)))
    w, h = out_size
    nbytes = max(1, len(unique) * h * w * 3)
    shm = shared_memory.SharedMemory(create=True, size=nbytes)
    try:
        threads = False if threads is None else threads  # one stream per process: no frame threads
        with mp.get_context("fork").Pool(len(parts)) as pool:
            results = pool.starmap(
                _decode_part, [(str(path), part, unique, out_size, shm.name, threads) for part in parts]
            )
        array = np.ndarray((len(unique), h, w, 3), dtype=np.uint8, buffer=shm.buf).copy()
    finally:
        shm.close()
        shm.unlink()
    got = np.zeros(len(unique), dtype=bool)
    bad: set[int] = set()
    for indices, part_stats, part_bad in results:
        got[indices] = True
        bad.update(part_bad)
        for key, value in part_stats.items():
            setattr(stats, key, getattr(stats, key) + value)
    drop_tainted(unique, got, bad)
    return array, got


def drop_tainted(unique: np.ndarray, got: np.ndarray, bad: set[int]) -> None:
    """Unmark frames whose GOP turned out to have a failed packet, whenever that was found:
    a frame decoded before the failure showed is dropped all the same, so the frames returned
    do not depend on the order segments were decoded in (one process or several)."""
    if bad:
        tainted = np.isin(unique, np.fromiter(bad, dtype=np.int64))
        got[tainted] = False
