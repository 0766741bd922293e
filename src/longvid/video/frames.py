"""Sampled frames and what their decode cost; small helpers to slice and join them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from longvid.video.container import VideoInfo


@dataclass
class DecodeStats:
    """What the decode cost: packets fed to the decoder, seeks, and the plan chosen."""

    packets_decoded: int = 0
    frames_decoded: int = 0
    seeks: int = 0
    segments: int = 0
    decode_errors: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Frames:
    """Sampled frames: ``array`` (N, H, W, 3) uint8 RGB, with each frame's index in the
    video's presentation order and its timestamp in seconds from the first frame."""

    array: np.ndarray
    indices: np.ndarray  # (N,) int64
    timestamps: np.ndarray  # (N,) float64 seconds
    info: VideoInfo
    skipped: tuple[int, ...] = ()  # requested frames that could not be decoded
    stats: DecodeStats = field(default_factory=DecodeStats)

    def __len__(self) -> int:
        return len(self.indices)

    def save_npz(self, path: str | Path) -> None:
        np.savez(path, frames=self.array, indices=self.indices, timestamps=self.timestamps)

    @classmethod
    def from_array(cls, array: np.ndarray) -> Frames:
        """Frames given as a uint8 array (N, H, W, 3), with no video behind them."""
        return cls(array=array, indices=np.arange(len(array)), timestamps=np.zeros(len(array)), info=None)

    @classmethod
    def placeholder(cls, n: int) -> Frames:
        """``n`` frames known by count alone (no pixels, no video)."""
        return cls.from_array(np.empty((n, 0, 0, 3), np.uint8))

    @property
    def duration(self) -> float | None:
        """Seconds of video the frames were sampled from (frame count / rate, as
        transformers' ``VideoMetadata`` has it), or None for frames without their video."""
        info = self.info
        if info is None or not info.frame_count or not info.fps:
            return None
        return info.frame_count / float(info.fps)

    def slice(self, sl: slice) -> Frames:
        return Frames(array=self.array[sl], indices=self.indices[sl], timestamps=self.timestamps[sl], info=self.info)

    def without_pixels(self) -> Frames:
        """The same frames' indices and timestamps, pixels dropped (they are not kept once
        encoded)."""
        empty = np.empty((len(self.indices), 0, 0, 3), np.uint8)
        return Frames(array=empty, indices=self.indices, timestamps=self.timestamps, info=self.info)

    @staticmethod
    def join(chunks: list[Frames], keep_pixels: bool = False) -> Frames:
        """Indices and timestamps of all chunks in order; pixels only when asked."""
        indices = np.concatenate([c.indices for c in chunks])
        timestamps = np.concatenate([c.timestamps for c in chunks])
        empty = np.empty((len(indices), 0, 0, 3), np.uint8)
        array = np.concatenate([c.array for c in chunks]) if keep_pixels else empty
        return Frames(array=array, indices=indices, timestamps=timestamps, info=chunks[0].info)
