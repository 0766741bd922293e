"""What KV-cache quantization costs on a trained model: the testbed, needle items.

    python bench/kv_drift.py [--frames 64,256] [--items 48] [--markdown FILE]

For each frame count and bit width: accuracy of the answer, agreement of the answer with the
16-bit cache, and the largest difference of the answer logits from the 16-bit cache's (the
prefill runs in 1,024-token chunks, so later chunks attend to quantized earlier blocks:
whatever error there is reaches the answer). One torch thread. Prints ``BENCH {json}`` lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", default="64,256")
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()

    import torch

    from longvid.models import load
    from longvid.probes.tasks import make_item, render_frames
    from longvid.testbed import default_model_path

    torch.set_num_threads(1)
    llm = load(str(default_model_path()))
    tok = llm.adapter.tokenizer
    rows = []
    for frames in (int(f) for f in args.frames.split(",")):
        stats = {bits: {"correct": 0, "agree": 0, "max_diff": 0.0} for bits in (16, 8, 4, 2)}
        for seed in range(args.items):
            item = make_item("needle", 7_000_000 + seed, frames)
            visual = llm.encode_video(render_frames(item))
            layout = llm.layout(item.question, visual, "visual-pi")
            want = tok.convert_tokens_to_ids(item.answer)
            ref = None
            for bits in (16, 8, 4, 2):
                logits, _ = llm.prefill(layout, chunk=1024, kv_bits=bits)
                logits = logits[-1]
                s = stats[bits]
                s["correct"] += int(logits.argmax()) == want
                if ref is None:
                    ref = logits
                s["agree"] += int(logits.argmax()) == int(ref.argmax())
                s["max_diff"] = max(s["max_diff"], float((logits - ref).abs().max()))
        tokens = layout.length
        for bits, s in stats.items():
            rec = {
                "frames": frames,
                "prompt_tokens": tokens,
                "kv_bits": bits,
                "accuracy": round(s["correct"] / args.items, 3),
                "agrees_with_16bit": round(s["agree"] / args.items, 3),
                "max_logit_diff": round(s["max_diff"], 4),
            }
            print("BENCH " + json.dumps(rec), flush=True)
            rows.append(rec)
    if args.markdown:
        lines = [
            "| frames | prompt tokens | KV bits | accuracy | same answer as 16-bit | largest logit difference |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['frames']} | {r['prompt_tokens']} | {r['kv_bits']} | {r['accuracy']:.3f} | "
                f"{r['agrees_with_16bit']:.3f} | {r['max_logit_diff']} |"
            )
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
