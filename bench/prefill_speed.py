"""Prefill time: longvid's blockwise attention over a block KV cache (16 and 4 bits; each
block through the fused kernel, the default, and through the plain-torch online softmax)
against transformers' SDPA over a DynamicCache, same model, same 1,024-token chunks, one run.

    python bench/prefill_speed.py [--frames 64] [--repeats 2]

A tiny LLaVA-OneVision with the 7B's frame geometry (27x27 patches, 196 tokens a frame) and
a 2-layer language model 512 wide; 1 torch thread. Prints ``BENCH {json}`` lines and the
ratios to SDPA.
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
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the median is reported")
    args = ap.parse_args()

    import torch
    from transformers import DynamicCache

    from longvid.extend import blockwise
    from longvid.models import load
    from longvid.models.checkpoint.tiny import save
    from longvid.models.inference.generation import forward
    from longvid.testbed.sample import default_sample

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        sizes = dict(grid=27, patch=2, vision_hidden=32, hidden=512, layers=2, heads=4, kv_heads=4)
        llm = load(save("llava_onevision", Path(d) / "ov", **sizes))
    visual = llm.encode_video(default_sample(), args.frames)
    layout = llm.layout("what colour ?", visual, "none", visual_window=10**9)
    embeds, positions = layout.embeds, layout.positions
    runs: dict[str, list[float]] = {}

    def sdpa() -> None:
        with torch.inference_mode():
            cache = DynamicCache(config=llm.adapter.text_config)
            for start in range(0, embeds.shape[0], 1024):
                piece = slice(start, start + 1024)
                forward(llm.adapter, embeds[piece], positions[piece], cache, last_only=True)

    for _ in range(args.repeats):  # interleaved, so drift in the machine's speed hits all alike
        for kernel in ("fused", "online"):
            for bits in (16, 4):
                t0 = time.perf_counter()
                with blockwise.block_kernel(kernel):
                    llm.prefill(layout, chunk=1024, kv_bits=bits)
                runs.setdefault(f"blockwise_{kernel}_{bits}bit", []).append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sdpa()
        runs.setdefault("sdpa_dynamic_16bit", []).append(time.perf_counter() - t0)
    seconds = {name: statistics.median(v) for name, v in runs.items()}
    base = seconds["sdpa_dynamic_16bit"]
    for name, s in seconds.items():
        rec = {"config": name, "tokens": int(embeds.shape[0]), "seconds": round(s, 2), "vs_sdpa": round(s / base, 2)}
        print("BENCH " + json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
