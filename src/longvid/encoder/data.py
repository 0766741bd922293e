"""Video-text data for the encoder recipe: a JSONL manifest reader that reports and skips bad
rows, and a synthetic set whose captions describe the order of events, so order matters.

Manifest: one JSON object per line, ``{"video": PATH, "caption": TEXT}`` with optional
``"start"`` / ``"end"`` seconds; relative paths are relative to the manifest's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

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
