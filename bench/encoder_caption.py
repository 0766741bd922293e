"""Video-to-text in miniature: a frozen trained VideoViT + a frozen causal LM, joined by a
Perceiver resampler and gated cross-attention, scored with ROUGE-L on held-out clips.

    python bench/encoder_caption.py --encoder WORK/joint-0.75 --work WORK [--out docs/encoder]

``WORK`` is bench/encoder_recipe.py's ``--work`` folder (its train/ and eval/ sets and
checkpoints). No pretrained LM can be downloaded here, so the frozen LM is made the way
Flamingo's was: a causal LM (a 2-layer Qwen2, 64 wide, word-level tokenizer over the
captions' words) pretrained on text alone (the training captions, next-token loss), then
frozen. Only the resampler and the gated layers train on the captioning loss. Baselines in
the same run: the frozen LM alone (gates at 0: the captioner before training, which cannot
see the video) and the most frequent training caption for every clip.

Writes ``caption.json`` and ``caption.md``; prints ``BENCH {json}``. 1 torch thread.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from longvid.encoder.caption_lm import pretrain_caption_lm as pretrain_lm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--lm-steps", type=int, default=300)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("docs/encoder"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    from longvid.encoder.captioner import CaptionerConfig, load_captioner, rouge_l, train_captioner
    from longvid.encoder.data import read_manifest
    from longvid.encoder.train import load_pixels

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    train_clips, _ = read_manifest(args.work / "train" / "manifest.jsonl")
    eval_clips, _ = read_manifest(args.work / "eval" / "manifest.jsonl")
    lm_dir = args.work / "caption_lm"
    lm_loss = pretrain_lm([c.caption for c in train_clips], lm_dir, args.lm_steps)
    cap_dir = args.work / "captioner"
    cfg = CaptionerConfig(latents=64, every=1, time_slots=4, max_new_tokens=24)
    losses = train_captioner(args.encoder, lm_dir, args.work / "train" / "manifest.jsonl", cap_dir,
                             steps=args.steps, batch=32, lr=1e-3, frames=16, config=cfg, progress=False)  # fmt: skip
    model, meta = load_captioner(cap_dir)
    size = model.encoder.config.image_size
    pixels = torch.stack([load_pixels(c, meta["frames"], size) for c in eval_clips])
    refs = [c.caption for c in eval_clips]
    predictions = []
    for i in range(0, len(eval_clips), 32):
        predictions += model.generate(pixels[i : i + 32])
    with torch.no_grad():  # the frozen LM alone: gates shut
        for g in model.gated:
            g.attn_gate.zero_()
            g.ff_gate.zero_()
        blind = []
        for i in range(0, len(eval_clips), 32):
            blind += model.generate(pixels[i : i + 32])
    common = Counter(c.caption for c in train_clips).most_common(1)[0][0]
    result = {
        "lm_pretrain_loss": round(lm_loss, 3),
        "captioner_loss_first_last": [round(losses[0], 3), round(sum(losses[-20:]) / len(losses[-20:]), 3)],
        "rouge_l": round(rouge_l(predictions, refs), 3),
        "rouge_l_frozen_lm_alone": round(rouge_l(blind, refs), 3),
        "rouge_l_most_common_caption": round(rouge_l([common] * len(refs), refs), 3),
        "exact_match": round(sum(p == r for p, r in zip(predictions, refs, strict=True)) / len(refs), 3),
        "examples": [{"reference": r, "generated": p} for r, p in list(zip(refs, predictions, strict=True))[:6]],
        "eval_clips": len(refs),
    }
    print("BENCH " + json.dumps({k: v for k, v in result.items() if k != "examples"}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "caption.json").write_text(json.dumps(result, indent=1))
    lines = [
        "| captioner | ROUGE-L |",
        "|---|---:|",
        f"| frozen VideoViT + frozen LM + resampler + gated cross-attention | {result['rouge_l']:.3f} |",
        f"| frozen LM alone (gates at 0: cannot see the video) | {result['rouge_l_frozen_lm_alone']:.3f} |",
        f"| the most common training caption for every clip | {result['rouge_l_most_common_caption']:.3f} |",
        "",
        f"Exact caption match: {100 * result['exact_match']:.1f} % of {len(refs)} held-out clips.",
        "",
        "| reference | generated |",
        "|---|---|",
        *[f"| {e['reference']} | {e['generated']} |" for e in result["examples"]],
    ]
    (args.out / "caption.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
