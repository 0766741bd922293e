"""What token reduction costs the vision stage: decode + encode + pool (+ reduce) of 256 frames,
uniform pooling against each reducer at keep 0.25, in one process, 1 torch thread, the median
of 5 runs each (interleaved, so drifts in machine load hit every method alike).

    python bench/reduce.py [--frames 256] [--model DIR]

Default model: a tiny LLaVA-OneVision with the 7B's token geometry (27x27 patches a frame,
as bench/memory.py). Prints ``BENCH {json}`` per method with its ratio to uniform.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--model")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    import torch

    from longvid.extend.reduce import REDUCERS, Reducer
    from longvid.models import load
    from longvid.models.checkpoint.tiny import save
    from longvid.testbed.sample import default_sample
    from longvid.video import sample_frames

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        model = args.model or save("llava_onevision", Path(d) / "ov", grid=27, patch=2, vision_hidden=32, hidden=64)
        llm = load(model)
        # decoded once: the bench times encoding, pooling and reduction, not the decoder
        frames = sample_frames(default_sample(), args.frames, size=llm.adapter.frame_size(256, 256, True))
        methods = {"uniform": None, **{name: Reducer(name, 0.25) for name in REDUCERS}}
        seconds: dict[str, list[float]] = {m: [] for m in methods}
        llm.encode_video(frames, args.frames)  # warm-up
        for _ in range(args.runs):
            for name, reducer in methods.items():
                t0 = time.perf_counter()
                visual = llm.encode_video(frames, args.frames, reducer=reducer)
                seconds[name].append(time.perf_counter() - t0)
                assert visual.count > 0
    base = statistics.median(seconds["uniform"])
    for name, times in seconds.items():
        median = statistics.median(times)
        print("BENCH " + json.dumps({"method": name, "frames": args.frames, "seconds": round(median, 3),
                                     "ratio_to_uniform": round(median / base, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
