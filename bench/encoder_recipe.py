"""Miniature reproduction of the encoder recipe (seed 001) and of long inputs (seed 002), on the
synthetic video-text set whose captions tell events in order.

    python bench/encoder_recipe.py [--steps 300] [--train-clips 512] [--eval-clips 128] [--out docs/encoder]

1. Train the ``micro`` VideoViT (32x32 frames, 8x8 patches, tubelets of 2 frames, width 64,
   4 blocks) for each backbone (joint / factorized / frame with mean pooling) and mask ratio
   (0 / 0.5 / 0.75 / 0.9), the same steps, batch, learning rate and seed for all, 16 frames per
   clip, against the frozen pretrained all-MiniLM-L6-v2 text tower (its projection trains),
   each caption told in reverse order added as a hard negative (``--no-order-negatives``: off).
2. On held-out clips: text->video / video->text R@1, the temporal-order probe (each video
   against its caption and the same events told in reverse order: accuracy, chance 50 %) and
   order R@1 (video->text among every caption *and* every reversed caption).
3. Training peak memory of each configuration on this model (bench/encoder.py's measurement,
   batch as trained), for the memory-vs-accuracy plot.
4. Long inputs: the joint model trained at 16 frames with 75 % masking, applied to 16 x m
   frames (m = 1, 2, 4, 8) by interleaved subsequences (INTP), consecutive chunks, or
   interpolated temporal embeddings.

Writes ``recipe.json``, ``recipe.md`` (tables) and ``memory_vs_r1.png`` to ``--out``; prints
``BENCH {json}`` lines. torch runs 1 thread; clips are decoded once and kept in memory
(``cache_decoded``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

BACKBONES = ("joint", "factorized", "frame")
RATIOS = (0.0, 0.5, 0.75, 0.9)
DEFAULT_STEPS = 300
MICRO = dict(image_size=32, patch=8, width=64, depth=4, heads=4, embed_dim=64)


def order_metrics(model, clips, video: torch.Tensor) -> dict:
    """Order accuracy and order R@1 (video->text among all captions and all reversed ones)."""
    from longvid.encoder.data import order_swapped
    from longvid.encoder.metrics import order_accuracy

    with torch.no_grad():
        text = model.text([c.caption for c in clips]).float()
        swapped = model.text([order_swapped(c.caption) for c in clips]).float()
    pool = torch.cat([text, swapped])
    sims = video @ pool.T
    right = sims.diagonal()[:, None]
    order_r1 = float(((sims > right).sum(dim=1) == 0).float().mean())
    return {"order_acc": order_accuracy(video, text, swapped), "order_r@1": order_r1}


def evaluate(model, clips, frames: int) -> dict:
    from longvid.encoder.evaluate import embed_clips
    from longvid.encoder.metrics import recall_at_k

    video, text = embed_clips(model, clips, frames, batch=32)
    out = {k: v for k, v in recall_at_k(video, text, ks=(1, 5)).items()}
    out.update(order_metrics(model, clips, video))
    return out


def long_inputs(model, clips, group: int, factors=(1, 2, 4, 8)) -> list[dict]:
    from longvid.encoder.long import LONG_MODES, long_video_embedding
    from longvid.encoder.metrics import recall_at_k
    from longvid.encoder.train import load_pixels

    rows = []
    size = model.video.config.image_size
    with torch.no_grad():
        text = model.text([c.caption for c in clips]).float()
    for m in factors:
        pixels = [load_pixels(c, group * m, size) for c in clips]
        for mode in LONG_MODES:
            video = torch.stack([long_video_embedding(model.video, p, group, mode) for p in pixels]).float()
            row = {"m": m, "frames": group * m, "mode": mode, **recall_at_k(video, text, ks=(1,))}
            row.update(order_metrics(model, clips, video))
            print("BENCH " + json.dumps(row), flush=True)
            rows.append(row)
    return rows


# the alternatives to masking the video-first recipe's memory study weighs, on the joint
# backbone: parameter-efficient adaptation, and coarser input sampling
VARIANTS = {
    "lora": dict(adapt="lora"),
    "mlp": dict(adapt="mlp"),
    "tubelet4": dict(tubelet=4),
    "patch16": dict(patch=16),
    "tubes": dict(tubes=True),
}


def training_memory(backbone: str, ratio: float, batch: int, variant: dict | None = None) -> int:
    """bench/encoder.py's measurement on the micro model, in its own process."""
    here = str(Path(__file__).parent)
    variant = variant or {}
    model = {**MICRO, **{k: v for k, v in variant.items() if k in ("tubelet", "patch", "tubes")}}
    adapt = variant.get("adapt", "none")
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); import encoder as b; "
        f"print(json.dumps(b.run_one({backbone!r}, 16, {ratio!r}, 2, {model!r}, {batch}, {adapt!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"]


def main() -> None:
    if sys.argv[1:2] == ["--redraw"]:  # tables and plot again from --out's recipe.json, no training
        out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/encoder")
        results = json.loads((out / "recipe.json").read_text())
        (out / "recipe.md").write_text(tables(results))
        plot(results, out / "memory_vs_r1.png")
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--train-clips", type=int, default=512)
    ap.add_argument("--eval-clips", type=int, default=128)
    ap.add_argument("--backbones", default=",".join(BACKBONES))
    ap.add_argument("--ratios", default=",".join(map(str, RATIOS)))
    ap.add_argument("--variants", default="",
                    help=f"alternatives on the joint backbone, unmasked: {','.join(VARIANTS)} (adapters start "
                         "from the joint unmasked checkpoint in --work)")  # fmt: skip
    ap.add_argument("--order-negatives", action=argparse.BooleanOptionalAction, default=True,
                    help="reversed captions as hard negatives (see EncoderTrainConfig.order_negatives)")  # fmt: skip
    ap.add_argument("--text", help="text encoder folder (default: all-MiniLM-L6-v2)")
    ap.add_argument("--long-from", default="joint-0.0",
                    help="checkpoint (in --work) for the long-input study; 'none' skips it")  # fmt: skip
    ap.add_argument("--update", action="store_true",
                    help="merge into --out/recipe.json (replace rows of the same backbone, ratio, steps)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("docs/encoder"))
    ap.add_argument("--work", type=Path, help="keep data and checkpoints here (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    from longvid.encoder.data import read_manifest, write_synthetic_set
    from longvid.encoder.train import EncoderTrainConfig, load_encoder, train

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tmp = None if args.work else tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    train_manifest = work / "train" / "manifest.jsonl"
    if not train_manifest.exists():
        write_synthetic_set(work / "train", args.train_clips, frames=16, size=32, seed=0)
    eval_manifest = work / "eval" / "manifest.jsonl"
    if not eval_manifest.exists():  # 128 frames a clip: the long-input study samples up to all of them
        write_synthetic_set(work / "eval", args.eval_clips, frames=128, size=32, seed=1_000_000)
    eval_clips, _ = read_manifest(eval_manifest)

    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results: dict = {"settings": [settings], "runs": []}
    previous = args.out / "recipe.json"
    if args.update and previous.exists():
        results = json.loads(previous.read_text())
        results["settings"].append(settings)
    for backbone in [b for b in args.backbones.split(",") if b]:
        for ratio in [float(r) for r in args.ratios.split(",") if r]:
            out = work / (f"{backbone}-{ratio}" + ("" if args.steps == DEFAULT_STEPS else f"-{args.steps}steps"))
            cfg = EncoderTrainConfig(
                manifest=str(train_manifest), out=str(out), stage="short", frames=16, mask_ratio=ratio,
                trainable="all", size="micro", backbone=backbone, text=args.text, steps=args.steps,
                batch=args.batch, lr=1e-3, warmup=min(40, args.steps // 10), seed=0, threads=1, cache_decoded=True,
                order_negatives=args.order_negatives,
                save_every=args.steps,
            )  # fmt: skip
            train(cfg, progress=False)
            history = [json.loads(ln) for ln in (out / "history.jsonl").read_text().splitlines()]
            model, _ = load_encoder(out)
            row = {"backbone": backbone, "mask_ratio": ratio, "steps": args.steps, **evaluate(model, eval_clips, 16)}
            row["final_loss"] = sum(h["loss"] for h in history[-20:]) / len(history[-20:])
            row["train_peak_bytes"] = training_memory(backbone, ratio, args.batch)
            print("BENCH " + json.dumps(row), flush=True)
            key = (backbone, ratio, args.steps)
            results["runs"] = [r for r in results["runs"] if (r["backbone"], r["mask_ratio"], r["steps"]) != key]
            results["runs"].append(row)
    for name in [v for v in args.variants.split(",") if v]:
        variant = VARIANTS[name]
        out = work / f"joint+{name}"
        # adapters adapt a trained model (the unmasked joint one); patchings train from scratch
        init = str(work / "joint-0.0") if "adapt" in variant else None
        cfg = EncoderTrainConfig(
            manifest=str(train_manifest), out=str(out), stage="short", frames=16, mask_ratio=0.0, trainable="all",
            size="micro", backbone="joint", text=args.text, steps=args.steps, batch=args.batch, lr=1e-3,
            warmup=min(40, args.steps // 10), seed=0, threads=1, cache_decoded=True,
            order_negatives=args.order_negatives, save_every=args.steps, init=init, **variant,
        )  # fmt: skip
        train(cfg, progress=False)
        history = [json.loads(ln) for ln in (out / "history.jsonl").read_text().splitlines()]
        model, _ = load_encoder(out)
        row = {"backbone": f"joint+{name}", "mask_ratio": 0.0, "steps": args.steps,
               **evaluate(model, eval_clips, 16)}  # fmt: skip
        row["final_loss"] = sum(h["loss"] for h in history[-20:]) / len(history[-20:])
        row["train_peak_bytes"] = training_memory("joint", 0.0, args.batch, variant)
        print("BENCH " + json.dumps(row), flush=True)
        results["runs"] = [r for r in results["runs"] if (r["backbone"], r["steps"]) != (row["backbone"], args.steps)]
        results["runs"].append(row)
    if args.long_from != "none" and (work / args.long_from / "checkpoint.pt").exists():
        model, _ = load_encoder(work / args.long_from)
        results["long"] = long_inputs(model, eval_clips, 16)
        results["long_from"] = args.long_from
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recipe.json").write_text(json.dumps(results, indent=1))
    (args.out / "recipe.md").write_text(tables(results))
    plot(results, args.out / "memory_vs_r1.png")
    if tmp is not None:
        tmp.cleanup()


def tables(results: dict) -> str:
    lines = [
        "| backbone | mask ratio | steps | train peak MiB | t2v R@1 | v2t R@1 | order acc | order R@1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = {b: i for i, b in enumerate([*BACKBONES, *(f"joint+{v}" for v in VARIANTS)])}
    for r in sorted(results["runs"], key=lambda r: (order.get(r["backbone"], 99), r["steps"], r["mask_ratio"])):
        lines.append(
            f"| {r['backbone']} | {r['mask_ratio']:g} | {r['steps']} | {r['train_peak_bytes'] / 2**20:.0f} | "
            f"{100 * r['t2v_r@1']:.1f} | {100 * r['v2t_r@1']:.1f} | {100 * r['order_acc']:.1f} | "
            f"{100 * r['order_r@1']:.1f} |"
        )
    if results.get("long"):
        lines += [
            "",
            f"Long inputs: checkpoint `{results.get('long_from')}`, trained at 16 frames, applied to 16 x m frames.",
            "",
            "| m | frames | mode | t2v R@1 | v2t R@1 | order acc | order R@1 |",
            "|---:|---:|---|---:|---:|---:|---:|",
        ]
        for r in results["long"]:
            lines.append(
                f"| {r['m']} | {r['frames']} | {r['mode']} | {100 * r['t2v_r@1']:.1f} | {100 * r['v2t_r@1']:.1f} | "
                f"{100 * r['order_acc']:.1f} | {100 * r['order_r@1']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    markers = {"joint": "o", "factorized": "s", "frame": "^"}
    for backbone in BACKBONES:
        steps = results["settings"][0]["steps"]  # the common budget; other runs are extra points
        runs = sorted((r for r in results["runs"] if r["backbone"] == backbone and r["steps"] == steps),
                      key=lambda r: r["mask_ratio"])  # fmt: skip
        if not runs:
            continue
        xs = [r["train_peak_bytes"] / 2**20 for r in runs]
        ys = [100 * r["order_r@1"] for r in runs]
        ax.plot(xs, ys, marker=markers[backbone], label=backbone)
        for r, x, y in zip(runs, xs, ys, strict=True):
            ax.annotate(f"{r['mask_ratio']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    steps = results["settings"][0]["steps"]
    for r in results["runs"]:  # the alternatives to masking: diamonds, labelled
        if r["backbone"].startswith("joint+") and r["steps"] == steps:
            x, y = r["train_peak_bytes"] / 2**20, 100 * r["order_r@1"]
            ax.plot([x], [y], marker="D", markersize=7, color="gray", linestyle="none")
            ax.annotate(r["backbone"].removeprefix("joint+"), (x, y), textcoords="offset points", xytext=(5, -8),
                        fontsize=8)  # fmt: skip
    for r in results["runs"]:  # runs with another budget (e.g. equal compute): stars
        if r["steps"] != steps:
            x, y = r["train_peak_bytes"] / 2**20, 100 * r["order_r@1"]
            ax.plot([x], [y], marker="*", markersize=12, color="black", linestyle="none")
            ax.annotate(f"{r['backbone']} {r['mask_ratio']:g}, {r['steps']} steps", (x, y), textcoords="offset points",
                        xytext=(6, -4), fontsize=8)  # fmt: skip
    ax.set_xlabel("training peak memory (MiB), 16 frames, micro model")
    ax.set_ylabel("order R@1 (%)")
    ax.set_title(f"Memory vs temporal understanding ({steps} steps; labels: mask ratio)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
