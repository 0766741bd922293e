"""`longvid profile`: measured peak memory per stage and seconds per stage, by frame count,
beside the analytic figure for the 7B checkpoint of the same family.

Stages: weights (parameter bytes, exact), vision (what decoding + encoding + pooling adds
at its peak), KV cache (bytes the cache holds after prefill, exact), prefill activations
(what the prefill adds at its peak beyond the KV cache it leaves behind). On CPU the
peaks are sampled process RSS (allocator peak on CUDA).
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from longvid.extend.kvcache import cache_bytes
from longvid.extend.reduce import Reducer
from longvid.memory import PeakMemory
from longvid.models.checkpoint.registry import REFERENCE_7B
from longvid.models.inference.budget import estimate
from longvid.models.inference.encoding import encode_video
from longvid.models.inference.llm import VideoLLM
from longvid.models.inference.request import AskOptions
from longvid.models.inference.spill import BlockStore

MIB = 2**20


@dataclass
class ProfileRow:
    frames: int
    visual_tokens: int
    weights: int
    vision: int
    kv_cache: int
    prefill_activations: int
    peak_beyond_weights: int
    seconds_decode_encode: float
    seconds_prefill: float
    analytic_7b: dict

    def to_dict(self) -> dict:
        return asdict(self)


def profile(
    llm: VideoLLM,
    video,
    frames: list[int],
    options: AskOptions | dict | None = None,
    *,
    question: str = "what colour is the shape with the marker ?",
    **fields,
) -> list[ProfileRow]:
    """One row per frame count, under ``options`` (as for ``VideoLLM.ask``)."""
    o = AskOptions.build(options, **fields)
    kv_bits, extend, prefill_chunk = o.kv_bits, o.extend, o.prefill_chunk
    ad = llm.adapter
    weights = sum(p.numel() * p.element_size() for p in ad.model.parameters())
    schedule = llm.schedule(o.pooling, o.group, o.high, o.low, o.anchor_mode)
    reducer = None if o.reduce == "none" else Reducer(o.reduce, o.keep)
    cap = llm.kv_cap(o.kv_budget, kv_bits)  # a KV budget: the pooled blocks spilled, the cache bounded
    # one unrecorded run first: imports, allocator and decoder
    # warm-up would otherwise land in the first row
    warm = llm.encode_video(video, min(frames), schedule, reducer=reducer)
    llm.prefill(llm.layout(question, warm, extend, consume=True), chunk=prefill_chunk, kv_bits=kv_bits, kv_cap=cap)
    del warm
    rows = []
    for n in frames:
        gc.collect()
        with PeakMemory(ad.device) as total:
            t0 = time.perf_counter()
            with PeakMemory(ad.device) as vision:
                spill = None if cap is None else BlockStore(ad.device)
                visual = encode_video(ad, video, n, schedule, reducer=reducer, spill=spill)
            t1 = time.perf_counter()
            n_visual = visual.count
            layout = llm.layout(question, visual, extend, consume=True)
            with PeakMemory(ad.device) as prefill:
                _, cache = llm.prefill(layout, chunk=prefill_chunk, kv_bits=kv_bits, kv_cap=cap)
            t2 = time.perf_counter()
            kv = cache_bytes(cache)
            del cache
        ref = REFERENCE_7B.get(llm.family)
        analytic = {}
        if ref is not None:
            tokens = ref.visual_tokens(n, schedule, reducer)
            # under a budget: the 7B keeping the same share of the video's tokens
            ref_cap = None if cap is None else min(tokens, round(tokens * cap / n_visual))
            analytic = {"visual_tokens": tokens, **estimate(ref, n, tokens, kv_bits=kv_bits, kv_cap=ref_cap).to_dict()}
        rows.append(
            ProfileRow(
                frames=n,
                visual_tokens=n_visual,
                weights=weights,
                vision=vision.added,
                kv_cache=kv,
                prefill_activations=max(0, prefill.added - kv),
                peak_beyond_weights=total.added,
                seconds_decode_encode=round(t1 - t0, 3),
                seconds_prefill=round(t2 - t1, 3),
                analytic_7b=analytic,
            )
        )
    return rows


def plot(rows: list[ProfileRow], path: str | Path, title: str) -> Path:
    """Two panels: measured stages on this model, analytic stages for the 7B."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(rows))
    labels = [str(r.frames) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    parts = [("vision", "vision"), ("kv_cache", "KV cache"), ("prefill_activations", "prefill activations")]
    bottom = np.zeros(len(rows))
    for key, name in parts:
        vals = np.array([getattr(r, key) / MIB for r in rows])
        axes[0].bar(x, vals, bottom=bottom, label=name)
        bottom += vals
    axes[0].set_title("measured, beyond weights (MiB)")
    if rows and rows[0].analytic_7b:
        bottom = np.zeros(len(rows))
        for key, name in (("vision", "vision"), ("kv_cache", "KV cache"), ("prefill", "prefill activations")):
            vals = np.array([r.analytic_7b[key] / 2**30 for r in rows])
            axes[1].bar(x, vals, bottom=bottom, label=name)
            bottom += vals
        axes[1].set_title(f"analytic 7B, beyond {rows[0].analytic_7b['weights'] / 2**30:.0f} GiB of weights (GiB)")
    for ax in axes:
        ax.set_xticks(x, labels)
        ax.set_xlabel("frames")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table(rows: list[ProfileRow]) -> str:
    head = (
        "| frames | visual tokens | vision MiB | KV cache MiB | prefill act. MiB | peak beyond weights MiB "
        "| s decode+encode | s prefill | 7B: tokens | 7B: KV GiB | 7B: total GiB |"
    )
    lines = [head, "|---:" * 11 + "|"]
    for r in rows:
        a = r.analytic_7b
        lines.append(
            f"| {r.frames} | {r.visual_tokens} | {r.vision / MIB:.1f} | {r.kv_cache / MIB:.1f} | "
            f"{r.prefill_activations / MIB:.1f} | {r.peak_beyond_weights / MIB:.1f} | {r.seconds_decode_encode:.2f} | "
            f"{r.seconds_prefill:.2f} | {a.get('visual_tokens', '')} | {a.get('kv_cache', 0) / 2**30:.2f} | "
            f"{a.get('total', 0) / 2**30:.1f} |"
        )
    return "\n".join(lines) + "\n"
