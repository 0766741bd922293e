"""The bundled sample video: two minutes of shots like the testbed's training frames (one
shape at a time on a plain background), one of which shows a shape inside a white marker
for five seconds. Ask the testbed "what colour is the shape with the marker ?".

    python -m longvid.testbed.sample [OUT.mp4]      # default: src/longvid/data/sample.mp4

The marked shot is centred on one of the frames that uniform sampling of 16 frames (the
testbed's training length) picks, and is shorter than the gap between two of them, so the
default `longvid ask` sees it exactly once. Ground truth is written beside it (.json).
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from longvid.video.synth import COLORS, SHAPES, Event, Scene, write_video

FPS = 8
SECONDS = 120
SIDE = 256
SHOT = 40  # frames per shot (5 s)
QUESTION = "what colour is the shape with the marker ?"


def sample_scene(seed: int = 7, sampled_frames: int = 16, needle_slot: int = 11) -> tuple[Scene, str]:
    """The sample scene and the answer to QUESTION."""
    rng = np.random.default_rng(seed)
    n = FPS * SECONDS
    centre = round(needle_slot * (n - 1) / (sampled_frames - 1))
    needle = (centre - SHOT // 2, centre + SHOT // 2 - 1)
    colors, shapes = list(COLORS), list(SHAPES)
    answer = str(rng.choice(colors))
    events = [
        Event(start=needle[0], end=needle[1], shape=str(rng.choice(shapes)), color=answer, x=0.5, y=0.5, size=0.38,
              marker=True)
    ]  # fmt: skip
    start = 0
    while start < n:
        end = min(n, start + SHOT) - 1
        # shots away from the needle's; the random draw only happens for those (as before)
        if (end < needle[0] or start > needle[1]) and rng.random() < 0.75:
            events.append(
                Event(start=start, end=end, shape=str(rng.choice(shapes)), color=str(rng.choice(colors)),
                      x=float(rng.uniform(0.35, 0.65)), y=float(rng.uniform(0.35, 0.65)),
                      size=float(rng.uniform(0.32, 0.42)))
            )  # fmt: skip
        start += SHOT
    events.sort(key=lambda e: e.start)
    scene = Scene(num_frames=n, width=SIDE, height=SIDE, fps=Fraction(FPS), background="plain", seed=seed,
                  events=tuple(events))  # fmt: skip
    return scene, answer


def default_sample() -> Path:
    """The sample video shipped in the package."""
    return Path(__file__).resolve().parent.parent / "data" / "sample.mp4"


def write_sample(path: str | Path = "src/longvid/data/sample.mp4") -> tuple[Path, str]:
    scene, answer = sample_scene()
    write_video(scene, path, codec="libx264", gop=32, crf=18, write_truth=True)
    return Path(path), answer


if __name__ == "__main__":
    out, answer = write_sample(*(sys.argv[1:2] or []))
    print(f"wrote {out}: ask '{QUESTION}' -> {answer}")
