"""Procedural videos with ground truth.

A ``Scene`` is a canvas (background, size, frame rate, length) and a tuple of ``Event``s:
a shape of a colour that is on screen from one frame to another, still or moving, maybe
with a marker (a white frame around it). Everything is a pure function of the scene, so
the same scene renders the same pixels, and the events *are* the ground truth that probes
(needle / count / order) and the encoder's video-text data are built from.

Frames can also carry their own index as a 16-bit code in a strip along the top
(``stamp_index``), with its complement below for checking; ``read_index_stamp`` gives it
back, or None when the strip is unreadable. Tests and benchmarks use it to prove that the
frame returned is the frame asked for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from longvid.errors import InvalidRequestError
from longvid.video.stamp import read_index_stamp, stamp_index  # noqa: F401 (re-exported)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (30, 190, 60),
    "blue": (35, 75, 225),
    "yellow": (240, 220, 30),
    "purple": (145, 50, 200),
    "orange": (250, 135, 20),
    "cyan": (30, 205, 215),
    "pink": (245, 120, 185),
}
SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "diamond")
MOTIONS: tuple[str, ...] = ("still", "left", "right", "up", "down")
BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "texture")


@dataclass(frozen=True)
class Event:
    """A shape on screen from frame ``start`` to frame ``end`` (inclusive).

    Positions are fractions of the frame: ``(x, y)`` is the centre at ``start``; a moving
    shape travels ``travel`` of the frame width/height in its direction by ``end``.
    ``size`` is the shape's height as a fraction of the frame height.
    """

    start: int
    end: int
    shape: str
    color: str
    motion: str = "still"
    x: float = 0.5
    y: float = 0.5
    size: float = 0.2
    travel: float = 0.3
    marker: bool = False

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise InvalidRequestError(f"unknown shape {self.shape!r}; choose from {', '.join(SHAPES)}")
        if self.color not in COLORS:
            raise InvalidRequestError(f"unknown colour {self.color!r}; choose from {', '.join(COLORS)}")
        if self.motion not in MOTIONS:
            raise InvalidRequestError(f"unknown motion {self.motion!r}; choose from {', '.join(MOTIONS)}")
        if not 0 <= self.start <= self.end:
            raise InvalidRequestError(f"event frames must satisfy 0 <= start <= end (got {self.start}, {self.end})")

    def active(self, frame: int) -> bool:
        return self.start <= frame <= self.end

    def centre(self, frame: int) -> tuple[float, float]:
        """Centre (x, y) as fractions of the frame at ``frame``."""
        span = max(1, self.end - self.start)
        progress = (frame - self.start) / span
        dx, dy = {"still": (0, 0), "left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[self.motion]
        return self.x + dx * self.travel * progress, self.y + dy * self.travel * progress

    def describe(self) -> str:
        """A caption: 'a red square moves left', 'a blue circle appears'."""
        article = "an" if self.color[0] in "aeiou" else "a"
        what = f"{article} {self.color} {self.shape}" + (" with a marker" if self.marker else "")
        verb = "appears" if self.motion == "still" else f"moves {self.motion}"
        return f"{what} {verb}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Scene:
    """A procedural video: canvas settings plus the events that are its ground truth."""

    num_frames: int
    width: int = 320
    height: int = 240
    fps: Fraction = Fraction(10)
    background: str = "gradient"
    seed: int = 0
    grain: int = 0  # amplitude of per-frame noise; raises the bitrate like real footage
    events: tuple[Event, ...] = field(default_factory=tuple)
    stamp_index: bool = False

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise InvalidRequestError(f"a scene needs at least 1 frame (got {self.num_frames})")
        if self.background not in BACKGROUNDS:
            raise InvalidRequestError(f"unknown background {self.background!r}; choose from {', '.join(BACKGROUNDS)}")
        object.__setattr__(self, "fps", Fraction(self.fps))
        object.__setattr__(self, "events", tuple(self.events))

    @property
    def duration(self) -> float:
        return self.num_frames / float(self.fps)

    def events_at(self, frame: int) -> list[Event]:
        return [e for e in self.events if e.active(frame)]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        d["events"] = [e.to_dict() for e in self.events]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        d = dict(d)
        d["fps"] = Fraction(d["fps"])
        d["events"] = tuple(Event(**e) for e in d.get("events", ()))
        return cls(**d)

    def renderer(self) -> SceneRenderer:
        return SceneRenderer(self)

    def frames(self) -> Iterator[np.ndarray]:
        r = self.renderer()
        for i in range(self.num_frames):
            yield r.render(i)


class SceneRenderer:
    """Draws a scene's frames; caches the background and shape masks between frames."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        rng = np.random.default_rng(scene.seed)
        h, w = scene.height, scene.width
        self._base = _background(scene.background, h, w, rng)
        # A bank of grain frames, reused with offsets: per-frame fresh noise costs more to
        # generate than to encode.
        self._grain = (
            rng.integers(-scene.grain, scene.grain + 1, size=(8, h, w, 1), dtype=np.int16) if scene.grain else None
        )
        self._masks: dict[tuple[str, int], np.ndarray] = {}

    def render(self, i: int) -> np.ndarray:
        s = self.scene
        h, w = s.height, s.width
        if s.background == "texture":
            # Slow camera pan over a texture twice the frame size.
            oy = int((i * 0.7) % (self._base.shape[0] - h))
            ox = int((i * 1.3) % (self._base.shape[1] - w))
            frame = self._base[oy : oy + h, ox : ox + w].copy()
        else:
            frame = self._base.copy()
        if self._grain is not None:
            g = self._grain[i % len(self._grain)]
            frame = np.clip(frame.astype(np.int16) + np.roll(g, i % 7, axis=1), 0, 255).astype(np.uint8)
        for e in s.events:
            if e.active(i):
                self._draw(frame, e, i)
        if s.stamp_index:
            stamp_index(frame, i)
        return frame

    def _mask(self, shape: str, side: int) -> np.ndarray:
        key = (shape, side)
        if key not in self._masks:
            yy, xx = np.mgrid[0:side, 0:side] + 0.5
            c = side / 2
            if shape == "square":
                m = np.ones((side, side), dtype=bool)
            elif shape == "circle":
                m = (yy - c) ** 2 + (xx - c) ** 2 <= c * c
            elif shape == "diamond":
                m = np.abs(yy - c) + np.abs(xx - c) <= c
            else:  # triangle, apex up
                m = np.abs(xx - c) <= yy / 2
            self._masks[key] = m
        return self._masks[key]

    def _draw(self, frame: np.ndarray, e: Event, i: int) -> None:
        h, w = frame.shape[:2]
        side = max(3, round(e.size * h))
        cx, cy = e.centre(i)
        x0, y0 = round(cx * w - side / 2), round(cy * h - side / 2)
        if e.marker:
            pad = max(2, side // 6)
            _paste(frame, np.ones((side + 2 * pad, side + 2 * pad), dtype=bool), x0 - pad, y0 - pad, (255, 255, 255))
            inner = np.ones((side + pad, side + pad), dtype=bool)
            _paste(frame, inner, x0 - pad // 2, y0 - pad // 2, (20, 20, 20))
        _paste(frame, self._mask(e.shape, side), x0, y0, COLORS[e.color])


def _paste(frame: np.ndarray, mask: np.ndarray, x0: int, y0: int, color) -> None:
    h, w = frame.shape[:2]
    mh, mw = mask.shape
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + mw), min(h, y0 + mh)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    sub = mask[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    frame[fy0:fy1, fx0:fx1][sub] = color


def _background(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "plain":
        return np.full((h, w, 3), rng.integers(40, 90, 3), dtype=np.uint8)
    if kind == "gradient":
        a, b = rng.integers(20, 110, 3), rng.integers(60, 160, 3)
        t = np.linspace(0, 1, w)[None, :, None]
        g = a + (b - a) * t + 20 * np.sin(np.linspace(0, np.pi, h))[:, None, None]
        return np.broadcast_to(g, (h, w, 3)).clip(0, 255).astype(np.uint8)
    # texture: smooth noise (sum of upsampled random grids), twice the frame size for panning
    th, tw = 2 * h, 2 * w
    acc = np.zeros((th, tw, 3))
    for cells, weight in ((4, 60.0), (16, 30.0), (64, 12.0)):
        grid = rng.random((cells + 1, cells + 1, 3))
        ys = np.linspace(0, cells, th)
        xs = np.linspace(0, cells, tw)
        y0, x0 = np.floor(ys).astype(int).clip(0, cells - 1), np.floor(xs).astype(int).clip(0, cells - 1)
        fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
        g00, g01 = grid[y0][:, x0], grid[y0][:, x0 + 1]
        g10, g11 = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
        acc += weight * ((g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy)
    return (acc + 20).clip(0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- scenes and files


def random_scene(
    seed: int,
    num_frames: int,
    *,
    width: int = 320,
    height: int = 240,
    fps: Fraction | int | str = 10,
    num_events: int | None = None,
    background: str = "gradient",
    grain: int = 0,
    stamp: bool = False,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Scene:
    """A scene of random events spread over the video (seeded, so reproducible)."""
    rng = np.random.default_rng(seed)
    if num_events is None:
        num_events = max(1, min(40, num_frames // 50))
    min_length = min_length or max(1, num_frames // (4 * num_events))
    max_length = max(min_length, max_length or max(1, num_frames // max(1, num_events)))
    events = []
    for _ in range(num_events):
        length = int(rng.integers(min_length, max_length + 1))
        start = int(rng.integers(0, max(1, num_frames - length + 1)))
        events.append(
            Event(
                start=start,
                end=min(num_frames - 1, start + length - 1),
                shape=str(rng.choice(SHAPES)),
                color=str(rng.choice(list(COLORS))),
                motion=str(rng.choice(MOTIONS)),
                x=float(rng.uniform(0.25, 0.75)),
                y=float(rng.uniform(0.3, 0.7)),
                size=float(rng.uniform(0.12, 0.25)),
                travel=float(rng.uniform(0.1, 0.25)),
                marker=bool(rng.random() < 0.15),
            )
        )
    events.sort(key=lambda e: (e.start, e.end))
    return Scene(
        num_frames=num_frames,
        width=width,
        height=height,
        fps=Fraction(fps),
        background=background,
        seed=seed,
        grain=grain,
        events=tuple(events),
        stamp_index=stamp,
    )


# Encoder settings by codec: keyframe spacing is exact (scene-cut keyframes off) so tests
# and benchmarks know the GOP.
def _encoder_options(codec: str, gop: int, crf: int | None, bframes: int | None) -> dict[str, str]:
    if codec == "libx264":
        params = [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
        if bframes is not None:
            params.append(f"bframes={bframes}")
        opts = {"preset": "veryfast", "x264-params": ":".join(params)}
        if crf is not None:
            opts["crf"] = str(crf)
        return opts
    if codec in ("libvpx-vp9", "libvpx"):
        opts = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "auto-alt-ref": "0"}
        if crf is not None:
            opts.update({"crf": str(crf), "b": "0"})
        return opts
    if codec == "mpeg4":
        opts = {"qscale": "3"}
        if bframes:
            opts["bf"] = str(bframes)
        return opts
    return {}


def write_video(
    scene: Scene,
    path: str | Path,
    *,
    codec: str = "libx264",
    gop: int = 30,
    crf: int | None = 23,
    bframes: int | None = None,
    pix_fmt: str = "yuv420p",
    progress: bool = False,
    write_truth: bool = False,
) -> Scene:
    """Render ``scene`` and encode it to ``path`` (container from the suffix); returns the
    scene, whose events are the ground truth. ``write_truth`` also writes ``path.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    renderer = scene.renderer()
    from tqdm.auto import tqdm

    tmp = path.with_name(path.name + ".part" + path.suffix)
    with av.open(str(tmp), mode="w") as container:
        try:
            stream = container.add_stream(codec, rate=scene.fps)
        except (av.FFmpegError, ValueError):
            raise InvalidRequestError(
                f"no {codec!r} encoder in this FFmpeg; use libx264, libvpx-vp9 or mpeg4"
            ) from None
        stream.width, stream.height, stream.pix_fmt = scene.width, scene.height, pix_fmt
        stream.codec_context.gop_size = gop
        if codec == "mpeg4" and bframes:
            stream.codec_context.max_b_frames = bframes
        stream.options = _encoder_options(codec, gop, crf, bframes)
        for i in tqdm(range(scene.num_frames), desc=f"encode {path.name}", unit="frame", disable=not progress):
            frame = av.VideoFrame.from_ndarray(renderer.render(i), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / scene.fps
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)  # a half-written file never carries the final name
    if write_truth:
        path.with_suffix(path.suffix + ".json").write_text(json.dumps(scene.to_dict(), indent=1))
    return scene


def write_stamped_video(
    path: str | Path,
    num_frames: int,
    *,
    width: int = 320,
    height: int = 240,
    fps: Fraction | int | str = 30,
    codec: str = "libx264",
    gop: int = 30,
    bframes: int | None = None,
    background: str = "gradient",
    seed: int = 0,
    crf: int | None = 23,
) -> Scene:
    """A video whose every frame carries its own index (for exactness checks)."""
    scene = replace(
        random_scene(seed, num_frames, width=width, height=height, fps=fps, background=background, num_events=3),
        stamp_index=True,
    )
    return write_video(scene, path, codec=codec, gop=gop, bframes=bframes, crf=crf)


def describe_events(events: Sequence[Event], fps: Fraction | float) -> list[str]:
    """Human-readable ground truth: 'frames 10-40 (1.0-4.0 s): a red square moves left'."""
    f = float(fps)
    return [f"frames {e.start}-{e.end} ({e.start / f:.1f}-{(e.end + 1) / f:.1f} s): {e.describe()}" for e in events]
