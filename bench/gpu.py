"""Prefill on a GPU: plain transformers against longvid, with a released checkpoint's geometry.

    python bench/gpu.py [--model-dir DIR] [--frames 64,128,256] [--device cuda] [--dtype bfloat16]
                        [--markdown FILE]
    python bench/gpu.py --tiny --device cpu --dtype float32 --frames 4,8     # the CPU check

The model is built from the checkpoint folder's own files (default: LLaVA-OneVision-0.5B's
config, tokenizer and processor config from the shared hub folder) with random weights in
``--dtype`` (``--tiny``: its layers and widths shrunk, geometry kept; for testing on CPU). One
video (the bundled sample) is encoded once per frame count and pooling; then the prompt is
prefilled three ways, each timed and its peak memory measured beyond what was allocated
before it (CUDA: the allocator's exact peak; CPU: sampled RSS):

- ``transformers``: SDPA over a ``DynamicCache``, all tokens in one forward (as users run
  ``generate`` today), the family's own pooling;
- ``longvid_uniform_16bit``: longvid's block KV cache at 16 bits, 1,024-token chunks, the
  family's own pooling;
- ``longvid_progressive_4bit``: progressive pooling and a 4-bit cache.

The first two see the same tokens at the same positions: their last-position logits are
compared (``max_logit_diff``). One ``BENCH {json}`` line per row; ratios are against the
transformers row of the same frame count, measured in the same run. Vision time is left out
(it is the same in every row).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "shared" / "hub" / "llava-hf__llava-onevision-qwen2-0.5b-ov-hf"


def build(model_dir: Path, device: str, dtype: torch.dtype, tiny: bool):
    from longvid.models.checkpoint.files import read_checkpoint
    from longvid.models.checkpoint.registry import from_model
    from longvid.models.checkpoint.tiny import from_real_config

    files = read_checkpoint(model_dir)
    files.config._attn_implementation = "sdpa"  # plain transformers as users run it
    files.config.text_config._attn_implementation = "sdpa"
    return from_model(from_real_config(files.config, shrink=tiny, dtype=dtype, device=device), files)


def timed(device: str, fn):
    from longvid.memory import PeakMemory

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return out, seconds, mem.added


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--frames", default="64,128,256")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--tiny", action="store_true", help="shrink layers and widths (a CPU check)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --tiny --device cpu --dtype float32 to check the script")
    torch.set_num_threads(args.threads)
    from transformers import DynamicCache

    from longvid.models.inference.generation import forward
    from longvid.testbed.sample import default_sample

    llm = build(args.model_dir, args.device, getattr(torch, args.dtype), args.tiny)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    rows: list[dict] = []
    for frames in [int(f) for f in args.frames.split(",")]:
        uniform = llm.layout("What happens in the video?", llm.encode_video(default_sample(), frames), "none")
        progressive = llm.layout(
            "What happens in the video?",
            llm.encode_video(default_sample(), frames, llm.schedule("progressive")),
            "none",
        )

        def prefill(layout, kv_bits: int | None) -> torch.Tensor:
            """Last-position logits; kv_bits None: plain transformers, all tokens at once."""
            if kv_bits is not None:
                return llm.prefill(layout, chunk=1024, kv_bits=kv_bits)[0][-1]
            with torch.inference_mode():
                cache = DynamicCache(config=llm.adapter.text_config)
                return forward(llm.adapter, layout.embeds, layout.positions, cache, last_only=True)[-1]

        runs = {
            "transformers": (uniform, None),
            "longvid_uniform_16bit": (uniform, 16),
            "longvid_progressive_4bit": (progressive, 4),
        }
        logits, base = {}, {}
        for name, (layout, kv_bits) in runs.items():
            logits[name], seconds, peak = timed(args.device, lambda: prefill(layout, kv_bits))  # noqa: B023
            row = dict(device=device_name, dtype=args.dtype, tiny=args.tiny, frames=frames, config=name,
                       tokens=layout.length, seconds=round(seconds, 3), peak_mib=round(peak / 2**20, 1))  # fmt: skip
            if name == "transformers":
                base = row
            else:
                row["time_vs_transformers"] = round(seconds / base["seconds"], 2)
                row["peak_below_transformers"] = round(1 - peak / max(1, base["peak_mib"] * 2**20), 3)
            if name == "longvid_uniform_16bit":
                diff = (logits[name].float() - logits["transformers"].float()).abs().max()
                row["max_logit_diff"] = round(float(diff), 5)
            print("BENCH " + json.dumps(row), flush=True)
            rows.append(row)
    if args.markdown:
        lines = ["| frames | configuration | tokens | prefill s | x transformers | peak MiB | below transformers |",
                 "|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in rows:
            below = f"{100 * r['peak_below_transformers']:.0f} %" if "peak_below_transformers" in r else ""
            lines.append(f"| {r['frames']} | {r['config']} | {r['tokens']} | {r['seconds']} | "
                         f"{r.get('time_vs_transformers', 1.0)} | {r['peak_mib']} | {below} |")  # fmt: skip
        args.markdown.write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    main()
