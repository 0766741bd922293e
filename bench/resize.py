"""Exact (decode at native size, bicubic + antialias in torch) against fast (the decoder's
swscale resize) preprocessing: seconds for decode + preprocess, and |Δ| to the official
pixels. One torch thread. Prints one JSON line per (video, family, mode)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from longvid.models.checkpoint.reference import compare, official_frames
from longvid.models.checkpoint.registry import read_adapter
from longvid.video import FrameReader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("video", type=Path)
    parser.add_argument("--model", action="append", required=True, help="checkpoint folder (repeatable)")
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for model in args.model:
        ad = read_adapter(model)
        reader = FrameReader(args.video)
        w, h = reader.info.width, reader.info.height
        native = reader.sample(n=args.frames).array
        official = official_frames(ad, native)
        for mode in ("exact", "fast"):
            exact = mode == "exact"
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                arr = reader.sample(n=args.frames, size=ad.frame_size(w, h, exact)).array
                ours = ad.spec.normalize(ad.spec.uint8(arr))
                best = min(best, time.perf_counter() - t0)
            line = {"video": args.video.name, "family": ad.config.model_type, "mode": mode, "frames": args.frames}
            line.update(seconds=round(best, 3), **compare(ad, ours, official))
            print(json.dumps(line))


if __name__ == "__main__":
    main()
