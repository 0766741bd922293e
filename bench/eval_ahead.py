"""``longvid eval`` with the next video decoded ahead, against the serial loop.

    python bench/eval_ahead.py [--items 12] [--seconds 60] [--frames 16] [--repeats 2]

A Video-MME fixture (``longvid.evals.fixtures``) whose videos are replaced by 640x360 30 fps
H.264 videos of ``--seconds`` (GOP 60, textured and grainy like bench/sampling.py's, so that
decoding costs what real footage does; generated once, cached under .cache/bench/), answered
by the bundled testbed at ``--frames`` frames, 1 torch thread. Each repeat runs the benchmark
twice into fresh results files: serially (decode, answer, decode the next: ``ask`` without
its ``load``) and with decoding ahead (what ``longvid eval`` does), and checks that the two
files hold the same answers. Reported: items per second of each and their ratio, measured in
the same run. One ``BENCH {json}`` line per measurement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from longvid.evals.answerers import model_answerer
from longvid.evals.benchmarks import load_benchmark
from longvid.evals.fixtures import write_fixture
from longvid.evals.results import read_results
from longvid.evals.runner import run_eval
from longvid.models import load
from longvid.video.synth import random_scene, write_video
from sampling import CACHE  # bench/sampling.py's cache folder


def fixture(items: int, seconds: float) -> Path:
    root = CACHE / f"eval_ahead_videomme_{items}x{seconds:g}s"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        write_fixture("videomme", root, n=items)
        for k, item in enumerate(load_benchmark("videomme", root)):
            scene = random_scene(500 + k, round(seconds * 30), width=640, height=360, fps=30,
                                 background="texture", grain=6)  # fmt: skip
            print(f"writing {item.video.name} ({round(seconds * 30)} frames, 640x360)", flush=True)
            write_video(scene, item.video, codec="libx264", gop=60, crf=23)
        (root / "done").write_text("")
    return root


def timed_run(ask, data: Path, out: Path) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    run_eval("videomme", data, out, ask, progress=False)
    seconds = time.perf_counter() - t0
    return seconds, [{k: v for k, v in r.items() if k != "seconds"} for r in read_results(out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one thread for the model; the decode-ahead thread takes the other core
    data = fixture(args.items, args.seconds)
    llm = load(None)
    serial_s, ahead_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            ask = model_answerer(llm, frames=args.frames)
            loader = ask.load
            del ask.load  # the serial loop: each video decoded when its items are asked
            s_serial, serial = timed_run(ask, data, Path(tmp) / f"serial{rep}.jsonl")
            ask.load = loader
            s_ahead, ahead = timed_run(ask, data, Path(tmp) / f"ahead{rep}.jsonl")
            serial_s.append(s_serial)
            ahead_s.append(s_ahead)
            rec = dict(repeat=rep, items=len(serial), serial_s=round(s_serial, 3), ahead_s=round(s_ahead, 3),
                       identical=serial == ahead)  # fmt: skip
            print("BENCH " + json.dumps(rec), flush=True)
    n = len(serial)
    summary = dict(
        items=n, video_seconds=args.seconds, frames=args.frames, torch_threads=1,
        serial_items_per_s=round(n / statistics.median(serial_s), 3),
        ahead_items_per_s=round(n / statistics.median(ahead_s), 3),
        speedup=round(statistics.median(serial_s) / statistics.median(ahead_s), 2),
    )  # fmt: skip
    print("BENCH " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
