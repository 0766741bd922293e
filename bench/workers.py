"""Parallel exact decoding: ``FrameReader.sample(n, workers=K)`` against one worker.

    python bench/workers.py [--minutes 30] [--n 256] [--gop 60] [--workers 2] [--repeats 3]

The video is bench/sampling.py's (640x360, 30 fps, H.264, exact GOP, every frame stamped with
its index; generated once and cached under .cache/bench/). Each repeat times one worker, then
K workers, each with a fresh frame index (its demux included, as a first call pays), and
checks that the K-worker frames are byte-identical to the one-worker frames and show the
indices they were returned as. Reported: the median seconds of each and their ratio, measured
in the same run. One ``BENCH {json}`` line per measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from longvid.video import FrameReader, frame_index, minimum_decodes, uniform_indices
from sampling import bench_video, fresh_index, stamps_ok


def timed_sample(path, n: int, workers: int):
    fresh_index()
    t0 = time.perf_counter()
    frames = FrameReader(path).sample(n=n, workers=workers)
    return time.perf_counter() - t0, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--gop", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    path = bench_video(args.minutes, args.gop)
    index = frame_index(path)
    need = minimum_decodes(index, uniform_indices(len(index), args.n))
    one, many = [], []
    for rep in range(args.repeats):
        s1, f1 = timed_sample(path, args.n, 1)
        sk, fk = timed_sample(path, args.n, args.workers)
        identical = bool(np.array_equal(f1.array, fk.array) and np.array_equal(f1.indices, fk.indices))
        wrong = stamps_ok(fk.array, fk.indices)
        one.append(s1)
        many.append(sk)
        rec = dict(video=path.name, n=args.n, repeat=rep, workers=args.workers, one_worker_s=round(s1, 3),
                   workers_s=round(sk, 3), identical=identical, wrong_frames=wrong)  # fmt: skip
        print("BENCH " + json.dumps(rec), flush=True)
    summary = dict(
        video=path.name, n=args.n, workers=args.workers, minimum_decodes=need,
        one_worker_median_s=round(statistics.median(one), 3), workers_median_s=round(statistics.median(many), 3),
        speedup=round(statistics.median(one) / statistics.median(many), 2),
    )  # fmt: skip
    print("BENCH " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
