"""Memory benchmark: progressive pooling + 4-bit KV cache, and merge reduction to 25 % + 4-bit,
against uniform pooling + 16-bit KV, at 256 frames, on a tiny LLaVA-OneVision with the 7B's
token geometry; and a KV budget (the cache of ``--budget-frames`` uniform frames) across a
frames sweep.

    python bench/memory.py [--frames 256] [--markdown FILE]
    python bench/memory.py --family qwen3_vl|qwen3_5 [--hub ../shared/hub] [--markdown FILE]
    python bench/memory.py --frames 256,1024,4096 --configs uniform+16bit,budget16,budget4 --grid 13 \
        --full-up-to 1024 --markdown FILE

``--frames`` takes several counts (a sweep: every configuration at every count, on an hour-long
synthetic video at 2 fps, 7,200 frames, made in the run); ``--grid`` the patches a side of one
frame (27: the 7B's 196 tokens a frame after pooling; 13: 49, so that a 4,096-frame prefill
under the budget takes minutes on this CPU, not an hour). The budget rows report the peak over
(the budget's KV cache + one chunk's activations): the bound the budget promises.

``--family``: a random-weight model of the released config in the hub folder (Qwen3-VL-4B,
Qwen3.5-0.8B) with its real widths and four language layers (Qwen3.5's pattern kept: three
Gated DeltaNet, one full attention) and two vision layers, fp32; the bundled sample at the
family's own size (Qwen3's budget over all frames).

The model: SigLIP with a 27x27 patch grid per frame (as the 7B's 384/14), so uniform
pooling keeps 196 tokens a frame (50,177 visual tokens at 256 frames) and progressive
(G=4, strides 2/4) 86; a 2-layer language model 512 wide with 4 KV heads of 128 (the 7B's
head size), fp32 on this CPU. Each configuration runs in its own process (a run's freed
memory cannot hide the next one's peak), with 1 torch thread and freed memory returned to
the OS at once (``longvid.memory.return_freed_memory_to_os``). Prefill runs in chunks sized
by ``VideoLLM.auto_chunk`` with logits for the last position only.

Prints ``BENCH {json}`` per configuration and the ratio; ``--markdown`` writes the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "uniform+16bit": dict(pooling="uniform", kv_bits=16),
    "progressive+4bit": dict(pooling="progressive", kv_bits=4),
    # content-aware reduction to 25 % of the uniform tokens (extend/reduce.py), + 4-bit KV
    "merge25+4bit": dict(pooling="uniform", reduce="merge", keep=0.25, kv_bits=4),
    # a KV budget of --budget-frames uniform frames' tokens (extend/kvbudget.py), 16 and 4 bits
    "budget16": dict(pooling="uniform", kv_bits=16, budget=True),
    "budget4": dict(pooling="uniform", kv_bits=4, budget=True),
}
DEFAULT_CONFIGS = ("uniform+16bit", "progressive+4bit", "merge25+4bit")
SIZES = dict(grid=27, patch=2, vision_hidden=32, hidden=512, layers=2, heads=4, kv_heads=4)


def run_one(name: str, frames: int, model_dir: str, video: str | None = None, budget_frames: int = 256) -> dict:
    import torch

    from longvid.extend.kvcache import cache_bytes
    from longvid.extend.pooling import progressive, uniform
    from longvid.extend.reduce import Reducer
    from longvid.memory import PeakMemory, return_freed_memory_to_os
    from longvid.models import load
    from longvid.models.checkpoint.registry import REFERENCE_7B
    from longvid.models.inference.budget import estimate, geometry_of, kv_bytes_per_token
    from longvid.models.inference.encoding import encode_video
    from longvid.models.inference.spill import BlockStore
    from longvid.testbed.sample import default_sample

    torch.set_num_threads(1)
    return_freed_memory_to_os()
    cfg = CONFIGS[name]
    llm = load(model_dir)
    video = video or default_sample()
    schedule = progressive(4, 2, 4) if cfg["pooling"] == "progressive" else uniform(2)
    reducer = Reducer(cfg["reduce"], cfg["keep"]) if "reduce" in cfg else None
    question = "what colour is the shape with the marker ?"
    # warm-up outside the measured window: decoder, allocator, kernels, and the KV path
    # itself; 16 frames spill past one cache block
    warm = llm.encode_video(video, 16, schedule, reducer=reducer)
    native = warm.native_grid
    # the budget: the visual tokens of ``budget_frames`` uniform frames, per layer (as the session does:
    # pooled blocks spilled while the video is encoded)
    cap = geometry_of(llm, native).visual_tokens(budget_frames, schedule) if cfg.get("budget") else None
    llm.prefill(llm.layout(question, warm, visual_window=10**9, consume=True), kv_bits=cfg["kv_bits"], kv_cap=cap)
    del warm
    with PeakMemory() as total:
        t0 = time.perf_counter()
        spill = BlockStore(llm.adapter.device) if cap else None
        visual = encode_video(llm.adapter, video, frames, schedule, reducer=reducer, spill=spill)
        tokens = visual.count
        layout = llm.layout(question, visual, visual_window=10**9, consume=True)  # as in ask
        t1 = time.perf_counter()
        _, cache = llm.prefill(layout, kv_bits=cfg["kv_bits"], kv_cap=cap)
        t2 = time.perf_counter()
        kv = cache_bytes(cache)
    est = estimate(
        geometry_of(llm), frames, tokens, kv_bits=cfg["kv_bits"], prefill_chunk=llm.auto_chunk(cfg["kv_bits"])
    )
    budget_kv = None if cap is None else int(cap * kv_bytes_per_token(geometry_of(llm, native), cfg["kv_bits"]))
    ref = REFERENCE_7B.get(llm.family) if llm.family != "llava_onevision" else REFERENCE_7B["llava_onevision"]
    ref = ref or geometry_of(llm, native)  # no released 7B geometry: the measured model's own
    ref_cap = ref.visual_tokens(budget_frames, schedule) if cap else None  # the 7B's own budget of those frames
    ref_tokens = ref.visual_tokens(frames, schedule, reducer)
    ref_est = estimate(ref, frames, ref_tokens, kv_bits=cfg["kv_bits"], kv_cap=ref_cap)
    return {
        "config": name,
        "frames": frames,
        "visual_tokens": tokens,
        "peak_beyond_weights": total.added,
        "kv_cache": kv,
        "chunk_activations_analytic": est.prefill,
        "peak_over_kv_plus_chunk": round(total.added / (kv + est.prefill), 3),
        "analytic_7b_beyond_weights": ref_est.total - ref_est.weights,
        "analytic_7b_kv": ref_est.kv_cache,
        "kv_cap": cap,
        "budget_kv": budget_kv,
        "peak_over_budget_plus_chunk": None if cap is None else round(total.added / (budget_kv + est.prefill), 3),
        "dropped": cache.dropped_tokens,
        "encode_ms_per_frame": round(1000 * (t1 - t0) / frames, 2),
        "prefill_ms_per_frame": round(1000 * (t2 - t1) / frames, 2),
    }


def real_geometry(family: str, hub: Path, out: Path) -> None:
    """The released config's widths, four language layers, two vision layers, random weights,
    saved beside the released tokenizer and processor files."""
    import shutil

    import torch
    import transformers

    from longvid.models.checkpoint.files import read_checkpoint
    from longvid.models.checkpoint.registry import adapter_class

    folder = {"qwen3_vl": "Qwen__Qwen3-VL-4B-Instruct", "qwen3_5": "Qwen__Qwen3.5-0.8B"}[family]
    files = read_checkpoint(hub / folder)
    config = files.config
    tc, vc = config.text_config, config.vision_config
    tc.num_hidden_layers = 4
    if getattr(tc, "layer_types", None):
        tc.layer_types = tc.layer_types[:4]
    vc.depth = 2
    if getattr(vc, "deepstack_visual_indexes", None):
        vc.deepstack_visual_indexes = [0, 1]
    torch.manual_seed(0)
    model = getattr(transformers, adapter_class(config.model_type).model_classes[config.model_type])(config)
    shutil.copytree(hub / folder, out)
    model.save_pretrained(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", default="256", help="a frame count, or several (a sweep)")
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help=f"of {', '.join(CONFIGS)}")
    ap.add_argument("--grid", type=int, default=SIZES["grid"], help="patches a side of one frame")
    ap.add_argument("--budget-frames", type=int, default=256, help="the budget: the KV cache of this many frames")
    ap.add_argument("--full-up-to", type=int, help="run configurations without a budget only up to this many frames")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--video", help=argparse.SUPPRESS)
    ap.add_argument("--family", choices=("qwen3_vl", "qwen3_5"), help="a released Qwen3 geometry instead")
    ap.add_argument("--hub", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "hub")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, int(args.frames), args.model, args.video, args.budget_frames)))
        return
    from longvid.models.checkpoint.tiny import save

    frame_counts = [int(f) for f in args.frames.split(",")]
    names = [c.strip() for c in args.configs.split(",")]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as d:
        if args.family:
            real_geometry(args.family, args.hub, Path(d) / "ov")
        else:
            save("llava_onevision", Path(d) / "ov", **{**SIZES, "grid": args.grid})
        video = []
        if max(frame_counts) > 960:  # longer than the bundled sample: an hour at 2 fps, 7,200 frames
            from longvid.video.synth import random_scene, write_video

            write_video(random_scene(0, 7200, width=64, height=64, fps=2), Path(d) / "hour.mp4")
            video = ["--video", str(Path(d) / "hour.mp4")]
        for frames in frame_counts:
            for name in names:
                if args.full_up_to and frames > args.full_up_to and not CONFIGS[name].get("budget"):
                    continue  # its prefill is quadratic in the frames: hours on this CPU
                out = subprocess.run(
                    [sys.executable, __file__, "--one", name, "--frames", str(frames), "--model", str(Path(d) / "ov"),
                     "--budget-frames", str(args.budget_frames), *video],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                rec = json.loads(out.stdout.strip().splitlines()[-1])
                print("BENCH " + json.dumps(rec), flush=True)
                results[name, frames] = rec
    lines = _markdown(results) if args.markdown else []
    if "uniform+16bit" in names:
        for frames in frame_counts:
            if ("uniform+16bit", frames) not in results:
                continue
            base = results["uniform+16bit", frames]

            def saved(name: str, key: str, frames: int = frames, base: dict = base) -> float:
                return round(1 - results[name, frames][key] / base[key], 3)

            summary = {
                f"{name}_reduction": {"frames": frames, "measured": saved(name, "peak_beyond_weights"),
                                      "analytic_7b": saved(name, "analytic_7b_beyond_weights")}
                for name in names if name != "uniform+16bit" and (name, frames) in results
            }  # fmt: skip
            print("BENCH " + json.dumps(summary))
            lines += [""] + [
                f"Reduction of peak memory beyond weights at {frames} frames, {n.removesuffix('_reduction')}: "
                f"measured **{100 * r['measured']:.0f} %**, analytic for the 7B **{100 * r['analytic_7b']:.0f} %**."
                for n, r in summary.items()
            ]
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")


def _markdown(results: dict[tuple[str, int], dict]) -> list[str]:
    mib, gib = 2**20, 2**30
    lines = [
        "| configuration | frames | visual tokens | peak beyond weights (MiB) | KV cache (MiB) | peak / (KV + chunk) "
        "| peak / (budget + chunk) | prefill ms / frame | 7B analytic beyond weights (GiB) | 7B KV (GiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.values():
        bound = "" if r["peak_over_budget_plus_chunk"] is None else r["peak_over_budget_plus_chunk"]
        lines.append(
            f"| {r['config']} | {r['frames']} | {r['visual_tokens']} | {r['peak_beyond_weights'] / mib:.0f} | "
            f"{r['kv_cache'] / mib:.0f} | {r['peak_over_kv_plus_chunk']} | {bound} | {r['prefill_ms_per_frame']} | "
            f"{r['analytic_7b_beyond_weights'] / gib:.2f} | {r['analytic_7b_kv'] / gib:.2f} |"
        )
    return lines


if __name__ == "__main__":
    main()
