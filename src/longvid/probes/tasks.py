"""Procedural long-video QA with ground truth, from seeds (built on ``longvid.video.synth``).

A probe item is a video of ``num_frames`` frames (one frame per sampled frame, so sampling
``n=num_frames`` from its file returns exactly them), a question, and its answer:

- ``needle``: one frame, at a chosen depth, shows a shape inside a white marker; the
  question asks its colour. Every other frame may show a distractor: the same shapes and
  colours, never a marker.
- ``count``: a shape inside a marker appears in 1..5 frames, never two in a row (each is one
  event); distractors are unmarked shapes of any colour. Asks how many times.
- ``order``: two pairs appear once each, anywhere; asks which came first, answered by its
  colour. Distractors are never either pair.

Each has a short-answer form (one word) and a multiple-choice form (options A-D, answer a
letter). Frames are drawn at 64x64 and reduced to the model's 32x32 by 2x2 averaging, which
is what decoding a 64x64 file with ``size=32`` does too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from longvid.errors import InvalidRequestError
from longvid.video.synth import COLORS, SHAPES, Event, Scene, write_video

TASKS = ("needle", "count", "order")
FORMS = ("short", "mc")
NUMBERS = ("one", "two", "three", "four", "five")
LETTERS = ("A", "B", "C", "D")
RENDER_SIZE = 64  # pixels a side as drawn and written to files
MODEL_SIZE = 32  # pixels a side the testbed sees
MAX_COUNT = 5


@dataclass(frozen=True)
class ProbeItem:
    task: str
    seed: int
    num_frames: int
    form: str
    question: str
    answer: str  # what a correct model says: a word, or a letter for "mc"
    options: tuple[str, ...]  # mc: option texts in letter order
    key_frames: tuple[int, ...]  # the frames that hold the answer
    depth: float | None
    scene: Scene = field(repr=False)


def _pick(rng: np.random.Generator, items, exclude=()) -> str:
    pool = [x for x in items if x not in exclude]
    return str(pool[int(rng.integers(len(pool)))])


def _event(rng, frame: int, color: str, shape: str, marker: bool = False, centred: bool = False) -> Event:
    if centred:  # always the same 2x2 of the testbed's 4x4 pooled tokens: see make_item's count
        return Event(start=frame, end=frame, shape=shape, color=color, x=0.5, y=0.5, size=0.375, marker=marker)
    return Event(
        start=frame,
        end=frame,
        shape=shape,
        color=color,
        x=float(rng.uniform(0.32, 0.68)),
        y=float(rng.uniform(0.32, 0.68)),
        size=float(rng.uniform(0.32, 0.42)),
        marker=marker,
    )


def _distractors(
    rng, num_frames: int, taken: set[int], allowed, density: float = 0.7, centred: bool = False
) -> list[Event]:
    """A distractor in most free frames, its (colour, shape) drawn by ``allowed(rng)``."""
    out = []
    for f in range(num_frames):
        if f not in taken and rng.random() < density:
            color, shape = allowed(rng)
            out.append(_event(rng, f, color, shape, centred=centred))
    return out


def _spread(rng, num_frames: int, k: int) -> list[int]:
    """k distinct frames, no two adjacent, uniformly at random."""
    if num_frames < 2 * k - 1:
        raise InvalidRequestError(f"{k} separate events need at least {2 * k - 1} frames (got {num_frames})")
    # choose k gaps: classic stars-and-bars over num_frames - (k - 1) slots
    slots = np.sort(rng.choice(num_frames - (k - 1), size=k, replace=False))
    return [int(s + i) for i, s in enumerate(slots)]


def make_item(
    task: str,
    seed: int,
    num_frames: int,
    *,
    depth: float | None = None,
    form: str = "short",
    count: int | None = None,
    density: float = 0.7,
) -> ProbeItem:
    """One probe item, fully determined by its arguments. ``density``: the share of free
    frames that show a distractor (training ramps it up from 0)."""
    if task not in TASKS:
        raise InvalidRequestError(f"unknown probe task {task!r}; choose from {', '.join(TASKS)}")
    if form not in FORMS:
        raise InvalidRequestError(f"unknown form {form!r}; choose short or mc")
    if num_frames < 2:
        raise InvalidRequestError(f"a probe needs at least 2 frames (got {num_frames})")
    rng = np.random.default_rng([TASKS.index(task), seed, num_frames])
    colors, shapes = list(COLORS), list(SHAPES)

    if task == "needle":
        frame = round((depth if depth is not None else rng.random()) * (num_frames - 1))
        color, shape = _pick(rng, colors), _pick(rng, shapes)
        events = [_event(rng, frame, color, shape, marker=True)]
        events += _distractors(rng, num_frames, {frame}, lambda r: (_pick(r, colors), _pick(r, shapes)), density)
        question, answer, key = "what colour is the shape with the marker ?", color, (frame,)
        choices = [color, *rng.choice([c for c in colors if c != color], 3, replace=False).tolist()]
    elif task == "count":
        k = count if count is not None else int(rng.integers(1, min(MAX_COUNT, (num_frames + 1) // 2) + 1))
        frames = _spread(rng, num_frames, k)
        # The event is "a marked shape appears"; distractors are the same shapes and colours,
        # unmarked. Centred and one size, every shape covers the same visual tokens, so a
        # count of marked tokens is a count of events. (Two earlier designs asked for a colour
        # and shape amid distractors sharing one of them, or for a colour amid other colours:
        # the 0.6 M testbed stayed at chance on both, docs/results.md "Training".)
        pick = lambda r: (_pick(r, colors), _pick(r, shapes))  # noqa: E731
        events = [_event(rng, f, *pick(rng), marker=True, centred=True) for f in frames]
        events += _distractors(rng, num_frames, set(frames), pick, density, centred=True)
        question = "how many times is the marker in the video ?"
        answer, key = NUMBERS[k - 1], tuple(frames)
        choices = [answer, *rng.choice([n for n in NUMBERS if n != answer], 3, replace=False).tolist()]
    else:  # order
        c1, c2 = rng.choice(colors, 2, replace=False).tolist()
        s1, s2 = _pick(rng, shapes), _pick(rng, shapes)
        f1, f2 = sorted(rng.choice(num_frames, 2, replace=False).tolist())
        events = [_event(rng, f1, c1, s1), _event(rng, f2, c2, s2)]
        events += _distractors(
            rng, num_frames, {f1, f2}, lambda r: (_pick(r, colors, exclude=(c1, c2)), _pick(r, shapes)), density
        )
        first, second = (f"{c1} {s1}", f"{c2} {s2}") if rng.random() < 0.5 else (f"{c2} {s2}", f"{c1} {s1}")
        question = f"which came first , the {first} or the {second} ?"
        answer, key = c1, (f1, f2)
        choices = [c1, c2]

    options: tuple[str, ...] = ()
    if form == "mc":
        order = rng.permutation(len(choices))
        options = tuple(choices[i] for i in order)
        letters = " ".join(f"{LETTERS[i]} {opt}" for i, opt in enumerate(options))
        question = f"{question} options : {letters} . answer with the letter ."
        answer = LETTERS[options.index(answer)]
    events.sort(key=lambda e: e.start)
    bg = int(rng.integers(0, 2**31))
    scene = Scene(
        num_frames=num_frames,
        width=RENDER_SIZE,
        height=RENDER_SIZE,
        fps=Fraction(4),
        background="plain",
        seed=bg,
        events=tuple(events),
    )
    return ProbeItem(task, seed, num_frames, form, question, answer, options, key, depth, scene)


def render_frames(item: ProbeItem, size: int = MODEL_SIZE) -> np.ndarray:
    """The item's frames, (T, size, size, 3) uint8, drawn at 64 px and averaged down."""
    r = item.scene.renderer()
    factor = RENDER_SIZE // size
    out = np.empty((item.num_frames, size, size, 3), dtype=np.uint8)
    for i in range(item.num_frames):
        f = r.render(i).astype(np.float32)
        out[i] = f.reshape(size, factor, size, factor, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    return out


def write_item_video(item: ProbeItem, path: str | Path) -> Path:
    """Encode the item as a real video file (full-video mode reads it back)."""
    write_video(item.scene, path, codec="libx264", gop=32, crf=12)
    return Path(path)
