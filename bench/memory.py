"""Memory benchmark: progressive pooling + 4-bit KV cache, and merge reduction to 25 % + 4-bit,
against uniform pooling + 16-bit KV, at 256 frames, on a tiny LLaVA-OneVision with the 7B's
token geometry.

    python bench/memory.py [--frames 256] [--markdown FILE]
    python bench/memory.py --family qwen3_vl|qwen3_5 [--hub ../shared/hub] [--markdown FILE]

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
from pathlib import Path

CONFIGS = {
    "uniform+16bit": dict(pooling="uniform", kv_bits=16),
    "progressive+4bit": dict(pooling="progressive", kv_bits=4),
    # content-aware reduction to 25 % of the uniform tokens (extend/reduce.py), + 4-bit KV
    "merge25+4bit": dict(pooling="uniform", reduce="merge", keep=0.25, kv_bits=4),
}
SIZES = dict(grid=27, patch=2, vision_hidden=32, hidden=512, layers=2, heads=4, kv_heads=4)


def run_one(name: str, frames: int, model_dir: str) -> dict:
    import torch

    from longvid.extend.pooling import progressive, uniform
    from longvid.extend.reduce import Reducer
    from longvid.memory import PeakMemory, return_freed_memory_to_os
    from longvid.models import load
    from longvid.models.checkpoint.registry import REFERENCE_7B
    from longvid.models.inference.budget import estimate, geometry_of
    from longvid.testbed.sample import default_sample

    torch.set_num_threads(1)
    return_freed_memory_to_os()
    cfg = CONFIGS[name]
    llm = load(model_dir)
    schedule = progressive(4, 2, 4) if cfg["pooling"] == "progressive" else uniform(2)
    reducer = Reducer(cfg["reduce"], cfg["keep"]) if "reduce" in cfg else None
    question = "what colour is the shape with the marker ?"
    # warm-up outside the measured window: decoder, allocator, kernels, and the KV path
    # itself; 16 frames spill past one cache block
    warm = llm.encode_video(default_sample(), 16, schedule, reducer=reducer)
    llm.prefill(llm.layout(question, warm, visual_window=10**9, consume=True), kv_bits=cfg["kv_bits"])
    del warm
    with PeakMemory() as total:
        visual = llm.encode_video(default_sample(), frames, schedule, reducer=reducer)
        tokens, native = visual.count, visual.native_grid
        layout = llm.layout(question, visual, visual_window=10**9, consume=True)  # as in ask
        _, cache = llm.prefill(layout, kv_bits=cfg["kv_bits"])
        from longvid.extend.kvcache import cache_bytes

        kv = cache_bytes(cache)
    est = estimate(
        geometry_of(llm), frames, tokens, kv_bits=cfg["kv_bits"], prefill_chunk=llm.auto_chunk(cfg["kv_bits"])
    )
    ref = REFERENCE_7B.get(llm.family) if llm.family != "llava_onevision" else REFERENCE_7B["llava_onevision"]
    ref = ref or geometry_of(llm, native)  # no released 7B geometry: the measured model's own
    ref_est = estimate(ref, frames, ref.visual_tokens(frames, schedule, reducer), kv_bits=cfg["kv_bits"])
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
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--family", choices=("qwen3_vl", "qwen3_5"), help="a released Qwen3 geometry instead")
    ap.add_argument("--hub", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "hub")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.frames, args.model)))
        return
    from longvid.models.checkpoint.tiny import save

    results = {}
    with tempfile.TemporaryDirectory() as d:
        if args.family:
            real_geometry(args.family, args.hub, Path(d) / "ov")
        else:
            save("llava_onevision", Path(d) / "ov", **SIZES)
        for name in CONFIGS:
            out = subprocess.run(
                [sys.executable, __file__, "--one", name, "--frames", str(args.frames), "--model", str(Path(d) / "ov")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            print("BENCH " + json.dumps(rec), flush=True)
            results[name] = rec
    base = results["uniform+16bit"]

    def saved(name: str, key: str) -> float:
        return 1 - results[name][key] / base[key]

    summary = {
        f"{name}_reduction": {"measured": round(saved(name, "peak_beyond_weights"), 3),
                              "analytic_7b": round(saved(name, "analytic_7b_beyond_weights"), 3)}
        for name in CONFIGS if name != "uniform+16bit"
    }  # fmt: skip
    print("BENCH " + json.dumps(summary))
    if args.markdown:
        mib, gib = 2**20, 2**30
        lines = [
            "| configuration | visual tokens | peak beyond weights (MiB) | KV cache (MiB) | peak / (KV + chunk) "
            "| 7B analytic beyond weights (GiB) | 7B KV (GiB) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results.values():
            lines.append(
                f"| {r['config']} | {r['visual_tokens']} | {r['peak_beyond_weights'] / mib:.0f} | "
                f"{r['kv_cache'] / mib:.0f} | {r['peak_over_kv_plus_chunk']} | "
                f"{r['analytic_7b_beyond_weights'] / gib:.2f} | {r['analytic_7b_kv'] / gib:.2f} |"
            )
        lines.append("")
        for name, red in summary.items():
            lines.append(
                f"Reduction of peak memory beyond weights, {name.removesuffix('_reduction')}: measured "
                f"**{100 * red['measured']:.0f} %**, analytic for the 7B **{100 * red['analytic_7b']:.0f} %**."
            )
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
