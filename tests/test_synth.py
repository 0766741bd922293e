"""Procedural videos: deterministic from the seed, and the events really are on screen."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from longvid.errors import InvalidRequestError
from longvid.video import Event, Scene, random_scene, read_index_stamp, sample_frames, stamp_index, write_video
from longvid.video.synth import COLORS


def test_same_seed_same_pixels_other_seed_other_scene():
    a, b = random_scene(3, 200), random_scene(3, 200)
    assert a == b
    ra, rb = a.renderer(), b.renderer()
    for i in (0, 57, 199):
        np.testing.assert_array_equal(ra.render(i), rb.render(i))
    assert random_scene(4, 200).events != a.events


def test_event_is_drawn_exactly_while_active():
    ev = Event(start=10, end=20, shape="square", color="red", x=0.5, y=0.5, size=0.3)
    scene = Scene(num_frames=30, width=160, height=120, background="plain", events=(ev,))
    r = scene.renderer()
    centre = (60, 80)  # (row, col)
    assert tuple(r.render(15)[centre]) == COLORS["red"]
    assert tuple(r.render(9)[centre]) != COLORS["red"]
    assert tuple(r.render(21)[centre]) != COLORS["red"]
    assert scene.events_at(15) == [ev] and scene.events_at(25) == []


def test_moving_event_travels_in_its_direction():
    ev = Event(start=0, end=10, shape="circle", color="blue", motion="right", x=0.3, travel=0.4)
    assert ev.centre(0) == pytest.approx((0.3, 0.5))
    assert ev.centre(10) == pytest.approx((0.7, 0.5))
    scene = Scene(num_frames=11, width=200, height=100, background="plain", events=(ev,))
    r = scene.renderer()
    blue = np.array(COLORS["blue"])

    def blue_cols(frame):
        return np.nonzero((frame == blue).all(axis=2).any(axis=0))[0].mean()

    assert blue_cols(r.render(10)) - blue_cols(r.render(0)) == pytest.approx(0.4 * 200, abs=2)


def test_events_survive_encoding(tmp_path):
    ev = Event(start=5, end=14, shape="square", color="green", size=0.4, marker=True)
    scene = Scene(num_frames=20, width=160, height=120, background="gradient", events=(ev,))
    path = tmp_path / "ev.mp4"
    write_video(scene, path, gop=10, write_truth=True)
    frames = sample_frames(path, indices=[2, 10])
    centre = frames.array[:, 55:65, 75:85].reshape(2, -1, 3).mean(axis=1)
    assert np.abs(centre[1] - COLORS["green"]).max() < 20  # lossy, but unmistakably green
    assert np.abs(centre[0] - COLORS["green"]).max() > 60
    truth = Scene.from_dict(__import__("json").loads((tmp_path / "ev.mp4.json").read_text()))
    assert truth == scene


def test_index_stamp_roundtrip_and_rejects_unstamped():
    rng = np.random.default_rng(0)
    for h, w in ((240, 320), (72, 96), (360, 640)):
        for i in rng.integers(0, 65536, 20):
            frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            stamp_index(frame, int(i))
            assert read_index_stamp(frame) == i
    assert read_index_stamp(np.full((240, 320, 3), 128, np.uint8)) is None


def test_describe_and_validation():
    ev = Event(start=0, end=3, shape="square", color="orange", motion="left", marker=True)
    assert ev.describe() == "an orange square with a marker moves left"
    assert replace(ev, motion="still", marker=False, color="red").describe() == "a red square appears"
    with pytest.raises(InvalidRequestError, match="unknown colour"):
        Event(start=0, end=1, shape="square", color="mauve")
    with pytest.raises(InvalidRequestError, match="start <= end"):
        Event(start=5, end=1, shape="square", color="red")
    with pytest.raises(InvalidRequestError, match="at least 1 frame"):
        Scene(num_frames=0)
