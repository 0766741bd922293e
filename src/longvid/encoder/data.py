"""Video-text data for the encoder recipe: a JSONL manifest reader that reports and skips bad
rows, a synthetic set whose captions describe the order of events (so order matters), and
the decoded clips a training step reads (seeded per step, so a resumed run reads the same).

Manifest: one JSON object per line, ``{"video": PATH, "caption": TEXT}`` with optional
``"start"`` / ``"end"`` seconds; relative paths are relative to the manifest's folder.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from longvid.errors import InvalidRequestError, LongvidError
from longvid.video.synth import COLORS, SHAPES, Event, Scene, write_video

VERBS = {"still": "appears", "left": "moves left", "right": "moves right", "up": "moves up", "down": "moves down"}


@dataclass(frozen=True)
class Clip:
    video: Path
    caption: str
    start: float | None = None
    end: float | None = None


def read_manifest(path: str | Path, check_files: bool = True) -> tuple[list[Clip], list[tuple[int, str]]]:
    """The good rows, and (line number, reason) for each bad one (never fatal)."""
    path = Path(path)
    clips, bad = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append((number, f"not JSON ({e.msg})"))
            continue
        if not isinstance(row, dict) or not row.get("video") or not isinstance(row.get("caption"), str):
            bad.append((number, "needs a 'video' path and a 'caption' string"))
            continue
        start, end = row.get("start"), row.get("end")
        if start is not None and end is not None and float(start) >= float(end):
            bad.append((number, f"start {start} is not before end {end}"))
            continue
        video = Path(row["video"])
        video = video if video.is_absolute() else path.parent / video
        if check_files and not video.exists():
            bad.append((number, f"no such video: {video}"))
            continue
        clips.append(Clip(video, row["caption"].strip(), None if start is None else float(start),
                          None if end is None else float(end)))  # fmt: skip
    return clips, bad


def synthetic_scene(seed: int, frames: int = 32, events: int | None = None, size: int = 64) -> tuple[Scene, str]:
    """A scene of 2-3 events one after another, and the caption that tells them in order
    ("a red square moves left, then a blue circle appears")."""
    rng = np.random.default_rng([7, seed])
    k = events or int(rng.integers(2, 4))
    bounds = np.linspace(0, frames, k + 1).round().astype(int)
    out, parts = [], []
    used: set[tuple[str, str]] = set()
    for i in range(k):
        while True:
            color, shape = str(rng.choice(list(COLORS))), str(rng.choice(SHAPES))
            if (color, shape) not in used:
                used.add((color, shape))
                break
        motion = str(rng.choice(list(VERBS)))
        out.append(
            Event(
                start=int(bounds[i]),
                end=int(bounds[i + 1]) - 1,
                shape=shape,
                color=color,
                motion=motion,
                x=0.5,
                y=0.5,
                size=0.35,
                travel=0.3,
            )
        )
        parts.append(f"a {color} {shape} {VERBS[motion]}")
    scene = Scene(num_frames=frames, width=size, height=size, fps=Fraction(8), background="plain",
                  seed=int(rng.integers(2**31)), events=tuple(out))  # fmt: skip
    return scene, ", then ".join(parts)


def order_swapped(caption: str) -> str:
    """The same events told in reverse order: a caption that differs only in order."""
    return ", then ".join(reversed(caption.split(", then ")))


def write_synthetic_set(folder: str | Path, n: int, frames: int = 32, size: int = 64, seed: int = 0) -> Path:
    """n videos and ``manifest.jsonl`` (relative paths) in ``folder``."""
    folder = Path(folder)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        scene, caption = synthetic_scene(seed + i, frames, size=size)
        name = f"videos/clip{seed + i:06d}.mp4"
        write_video(scene, folder / name)
        lines.append(json.dumps({"video": name, "caption": caption}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "manifest.jsonl"


# ----------------------------------------------------------------------------- decoding for training


def clip_timestamps(clip: Clip, duration: float, frames: int) -> np.ndarray:
    """Centres of ``frames`` equal slices of the clip's window (the whole video by default)."""
    start = clip.start or 0.0
    end = min(clip.end if clip.end is not None else duration, duration)
    if end <= start:
        raise InvalidRequestError(f"clip window {start:.2f}-{end:.2f}s is outside the video ({duration:.2f}s)")
    return start + (np.arange(frames) + 0.5) * (end - start) / frames


def load_pixels(clip: Clip, frames: int, resolution: int) -> torch.Tensor:
    """(frames, 3, r, r) in [-1, 1] through longvid's sampler; frames == 1: (3, r, r), the middle frame."""
    from longvid.video import FrameReader

    reader = FrameReader(clip.video)
    times = clip_timestamps(clip, reader.index.duration, frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a clip shorter than ``frames`` repeats frames: intended
        array = reader.sample(timestamps=times.tolist(), size=(resolution, resolution)).array
    x = torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x[0] if frames == 1 else x


class ClipDataset(torch.utils.data.Dataset):
    """Decoded clips; a clip that fails to decode is reported and replaced by the next one
    (so every batch is full: ranks all-gather equal shapes)."""

    def __init__(self, clips: list[Clip], frames: int, resolution: int, cache: bool = False) -> None:
        self.clips, self.frames, self.resolution = clips, frames, resolution
        self.cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        if self.cache is None:
            return self._load(i)
        if i in self.cache:
            return self.cache[i]
        item = self._load(i)
        self.cache[i] = {**item, "failed": []}  # failures are reported the first time only
        return item

    def _load(self, i: int) -> dict:
        failed = []
        for k in range(min(len(self.clips), 20)):
            clip = self.clips[(i + k) % len(self.clips)]
            try:
                return {"pixels": load_pixels(clip, self.frames, self.resolution), "caption": clip.caption,
                        "failed": failed}  # fmt: skip
            except (LongvidError, OSError, ValueError) as e:
                failed.append((str(clip.video), str(e).splitlines()[0]))
        raise LongvidError(f"20 clips in a row failed to decode, the last: {failed[-1]}")


def collate(items: list[dict]) -> dict:
    return {
        "pixels": torch.stack([it["pixels"] for it in items]),
        "captions": [it["caption"] for it in items],
        "failed": [f for it in items for f in it["failed"]],
    }


class StepSampler(torch.utils.data.Sampler):
    """Clip indices for steps ``start``, ``start + 1``, ...: epoch e is the permutation seeded
    by (seed, e); step s on rank r takes positions [(s * world + r) * batch, ... + batch) of
    the endless concatenation. Resuming at step s reads exactly what the first run read."""

    def __init__(self, n: int, batch: int, seed: int, start: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.batch, self.seed, self.start, self.rank, self.world = n, batch, seed, start, rank, world

    def __iter__(self) -> Iterator[int]:
        step = self.start
        while True:
            first = (step * self.world + self.rank) * self.batch
            for pos in range(first, first + self.batch):
                epoch, offset = divmod(pos, self.n)
                yield int(np.random.default_rng([self.seed, epoch]).permutation(self.n)[offset])
            step += 1
