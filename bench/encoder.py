"""Encoder training cost vs input masking: peak memory and clips/s for mask ratio 0 / 0.5 /
0.75 / 0.9, frames 16 / 64 / 128, backbones joint / factorized / frame.

    python bench/encoder.py [--frames 16,64,128] [--ratios 0,0.5,0.75,0.9] [--backbones joint,factorized,frame]
                            [--markdown FILE] [--json FILE]

One training step = video tower forward on a batch of clips, the contrastive loss against
fixed text embeddings (the recipe's text features are cached: the frozen text encoder does
not run per step), backward, AdamW step. The model (``BENCH_MODEL``): 112x112 frames, 16x16
patches (7x7 = 49 tubelet tokens per 2 frames), width 192, 4 blocks, 3 heads; batch 4, fp32.
Each configuration runs in its own process (a run's freed memory cannot hide the next one's
peak) with 1 torch thread; one warm-up step, then ``--steps`` measured steps. Training peak
memory = weights + optimizer state + the input batch (summed from their tensors) + the
measured steps' peak above the RSS after warm-up (sampled every 2 ms, freed blocks returned
to the OS at once): the activations and gradients. On CUDA it is the allocator's peak.

Prints ``BENCH {json}`` per configuration; ratios are against mask ratio 0 in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH_MODEL = dict(image_size=112, patch=16, width=192, depth=4, heads=3, embed_dim=128)
BATCH = 4


def run_one(backbone: str, frames: int, ratio: float, steps: int, model: dict, batch: int, adapt: str = "none") -> dict:
    import torch

    from longvid.encoder.loss import ContrastiveLoss
    from longvid.encoder.model import VideoViT, VideoViTConfig
    from longvid.memory import PeakMemory, return_freed_memory_to_os

    torch.set_num_threads(1)
    return_freed_memory_to_os()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    net = VideoViT(VideoViTConfig(**model, frames=frames, backbone=backbone)).to(device)
    loss_fn = ContrastiveLoss().to(device)
    if adapt != "none":  # only adapters (and the head) train: no gradients or optimizer state elsewhere
        from longvid.encoder.adapt import adapter_parameters, apply_adapters

        apply_adapters(net, adapt, 8)
        net.to(device)
        for p in net.parameters():
            p.requires_grad_(False)
        for p in [*adapter_parameters(net), *net.head.parameters()]:
            p.requires_grad_(True)
    params = [p for p in [*net.parameters(), *loss_fn.parameters()] if p is not net.patch.weight]
    params = [p for p in params if p is not net.patch.bias and p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    side = model["image_size"]
    video = torch.rand(batch, frames, 3, side, side, device=device) * 2 - 1
    text = torch.nn.functional.normalize(torch.randn(batch, model["embed_dim"], device=device), dim=-1)
    generator = torch.Generator(device=device).manual_seed(0)

    def step() -> float:
        loss = loss_fn(net(video, ratio, generator), text)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    step()  # warm-up: kernels, allocator, optimizer state
    if device == "cuda":
        torch.cuda.synchronize()
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    # persistent tensors are counted from their sizes; the step's transient peak is measured
    # above the RSS after warm-up (which also holds library code pages the first step touched:
    # not training memory)
    state = [t for st in opt.state.values() for t in st.values() if torch.is_tensor(t)]
    persistent = sum(t.numel() * t.element_size() for t in [*net.parameters(), *state, video, text])
    peak = mem.peak if device == "cuda" else persistent + mem.added
    tokens = (frames // net.config.tubelet) * net.config.grid**2
    return {
        "backbone": backbone,
        "adapt": adapt,
        "frames": frames,
        "mask_ratio": ratio,
        "tokens_per_clip": tokens,
        "kept_tokens_per_clip": len(net.keep_indices(1, frames // net.config.tubelet, ratio)[0]) if ratio else tokens,
        "peak_bytes": int(peak),
        "clips_per_s": round(batch * steps / seconds, 3),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu, 1 thread",
    }


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", default="16,64,128")
    ap.add_argument("--ratios", default="0,0.5,0.75,0.9")
    ap.add_argument("--backbones", default="joint,factorized,frame")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--update", action="store_true", help="merge into --json (replace rows of the same configuration)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        backbone, frames, ratio = args.one.split(":")
        print(json.dumps(run_one(backbone, int(frames), float(ratio), args.steps, BENCH_MODEL, args.batch)))
        return
    ratios = _floats(args.ratios)
    if 0.0 not in ratios:
        ratios = [0.0, *ratios]  # the baseline every ratio is compared with
    records = []
    for backbone in args.backbones.split(","):
        for frames in [int(f) for f in args.frames.split(",")]:
            base = None
            for ratio in ratios:
                one = f"{backbone}:{frames}:{ratio}"
                cmd = [sys.executable, __file__, "--one", one, "--steps", str(args.steps), "--batch", str(args.batch)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                rec = json.loads(out.stdout.strip().splitlines()[-1])
                base = base or rec
                rec["memory_ratio_vs_0"] = round(base["peak_bytes"] / rec["peak_bytes"], 2)
                rec["speed_ratio_vs_0"] = round(rec["clips_per_s"] / base["clips_per_s"], 2)
                print("BENCH " + json.dumps(rec), flush=True)
                records.append(rec)
    if args.json:
        if args.update and args.json.exists():
            key = lambda r: (r["backbone"], r["frames"], r["mask_ratio"])  # noqa: E731
            new = {key(r) for r in records}
            old = [r for r in json.loads(args.json.read_text()) if key(r) not in new]
            records = old + records
        args.json.write_text(json.dumps(records, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(records))


def markdown(records: list[dict]) -> str:
    ratios = sorted({r["mask_ratio"] for r in records})
    head = "| backbone | frames | tokens/clip | " + " | ".join(f"mask {r:g}" for r in ratios) + " |"
    lines = [
        f"Device: {records[0]['device']}. Each cell: training peak MiB / clips per s "
        "(memory saving and speed-up against mask 0 in brackets).",
        "",
        head,
        "|---|---:|---:|" + "---:|" * len(ratios),
    ]
    rows: dict[tuple, dict] = {}
    for r in records:
        rows.setdefault((r["backbone"], r["frames"]), {})[r["mask_ratio"]] = r
    for (backbone, frames), cells in rows.items():
        parts = []
        for ratio in ratios:
            c = cells.get(ratio)
            if c is None:
                parts.append("")
                continue
            text = f"{c['peak_bytes'] / 2**20:.0f} / {c['clips_per_s']:.2f}"
            if ratio:
                text += f" ({c['memory_ratio_vs_0']}x, {c['speed_ratio_vs_0']}x)"
            parts.append(text)
        tokens = next(iter(cells.values()))["tokens_per_clip"]
        lines.append(f"| {backbone} | {frames} | {tokens} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
