"""The token counts docs/models.md quotes for Qwen2-VL / Qwen2.5-VL on 720p video: the
official processor's per-frame rule (the checkpoint's min/max pixels) against qwen-vl-utils'
budgets (``longvid.models.inference.sampling``). Arithmetic on the real processor config only.

    python scripts/qwen_budgets.py [QWEN_FOLDER]     # default: ../shared/hub's Qwen2.5-VL-3B
"""

from __future__ import annotations

import sys
from pathlib import Path

from longvid.models.checkpoint.processing import smart_resize
from longvid.models.checkpoint.registry import read_adapter
from longvid.models.inference import sampling

WIDTH, HEIGHT = 1280, 720


def row(label: str, frames: int, h: int, w: int, factor: int) -> str:
    per_step = (h // factor) * (w // factor)
    return f"| {label} | {frames} | {w}x{h} | {per_step:,} | {frames // 2 * per_step:,} |"


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "hub" / "Qwen__Qwen2.5-VL-3B-Instruct"
    spec = read_adapter(sys.argv[1] if len(sys.argv) > 1 else default).spec
    print("| 720p video | frames | frame size | tokens per 2 frames | visual tokens |")
    print("|---|---:|---:|---:|---:|")
    h, w = smart_resize(HEIGHT, WIDTH, spec.factor, spec.min_pixels, spec.max_pixels)
    print(row("256 frames, the processor's per-frame rule (longvid's default)", 256, h, w, spec.factor))
    lo, hi, total = sampling.VIDEO_MIN_PIXELS, sampling.VIDEO_MAX_PIXELS, sampling.VIDEO_TOTAL_PIXELS
    h, w = smart_resize(HEIGHT, WIDTH, spec.factor, lo, sampling.frame_cap(256, lo, hi, total))
    label = "256 frames under qwen-vl-utils' budget (`--frames 256 --total-pixels 90316800`)"
    print(row(label, 256, h, w, spec.factor))
    n = sampling.smart_nframes(54_000, 30.0)
    h, w = smart_resize(HEIGHT, WIDTH, spec.factor, lo, sampling.frame_cap(n, lo, hi, total))
    print(row("30 minutes at `--fps 2` (qwen-vl-utils' defaults)", n, h, w, spec.factor))


if __name__ == "__main__":
    main()
