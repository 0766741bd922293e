"""``longvid encoder eval``: text->video and video->text recall@1/5/10 on a manifest, and the
temporal-order probe (is each video closer to its caption than to the same events told in
reverse order?)."""

from __future__ import annotations

from pathlib import Path

import torch

from longvid.encoder.data import load_pixels, order_swapped, read_manifest
from longvid.encoder.metrics import order_accuracy, recall_at_k
from longvid.errors import InvalidRequestError
from longvid.progress import bar


@torch.no_grad()
def embed_clips(
    model,
    clips,
    frames: int,
    batch: int = 16,
    mask_ratio: float = 0.0,
    progress: bool = False,
    long: str | None = None,
    group: int | None = None,
):
    """(video embeddings, caption embeddings) for ``clips``, in order. ``long``: read the
    ``frames`` as subsequences of ``group`` frames (``interleave`` | ``chunks``) or at once
    with interpolated temporal embeddings (``interpolate``): longvid.encoder.long."""
    from longvid.encoder.long import long_video_embedding

    if long is not None and mask_ratio:
        raise InvalidRequestError("masking at inference and a long-input mode do not combine")

    model.eval()
    resolution = model.video.config.image_size
    device = model.video.pos_spatial.device
    videos, texts = [], []
    steps = range(0, len(clips), batch)
    meter = bar(progress, len(steps), "embedding clips", "batch", leave=True)
    generator = torch.Generator(device=device).manual_seed(0)
    for i in steps:
        part = clips[i : i + batch]
        pixels = torch.stack([load_pixels(c, frames, resolution) for c in part]).to(device)
        if long is None:
            videos.append(model.video(pixels, mask_ratio, generator))
        else:
            videos.append(torch.stack([long_video_embedding(model.video, p, group or frames, long) for p in pixels]))
        texts.append(model.text([c.caption for c in part]))
        meter.update(1)
    meter.close()
    return torch.cat(videos).float(), torch.cat(texts).float()


def evaluate_manifest(
    model,
    manifest: str | Path,
    frames: int,
    batch: int = 16,
    mask_ratio: float = 0.0,
    progress: bool = False,
    long: str | None = None,
    group: int | None = None,
) -> dict:
    """Recall@k both ways, and order accuracy over clips whose caption tells 2+ events."""
    clips, bad = read_manifest(manifest)
    if len(clips) < 2:
        raise InvalidRequestError(f"{manifest}: {len(clips)} usable clips; retrieval needs at least 2")
    video, text = embed_clips(model, clips, frames, batch, mask_ratio, progress, long, group)
    out: dict = {"clips": len(clips), "bad_rows": len(bad), "frames": frames, "mask_ratio": mask_ratio}
    if long is not None:
        out.update(long=long, group=group or frames)
    out.update({k: round(v, 4) for k, v in recall_at_k(video, text).items()})
    ordered = [i for i, c in enumerate(clips) if order_swapped(c.caption) != c.caption]
    if ordered:
        with torch.no_grad():
            swapped = model.text([order_swapped(clips[i].caption) for i in ordered]).float()
        out["order_acc"] = round(order_accuracy(video[ordered], text[ordered], swapped), 4)
        out["order_clips"] = len(ordered)
    return out


def format_report(result: dict) -> str:
    how = f", {result['long']} in groups of {result['group']}" if result.get("long") else ""
    lines = [f"{result['clips']} clips, {result['frames']} frames{how}, mask ratio {result['mask_ratio']}"]
    for way, name in (("t2v", "text -> video"), ("v2t", "video -> text")):
        lines.append(f"{name}:  " + "  ".join(f"R@{k} {100 * result[f'{way}_r@{k}']:5.1f}" for k in (1, 5, 10)))
    if "order_acc" in result:
        lines.append(f"temporal order: {100 * result['order_acc']:.1f} % of {result['order_clips']} clips "
                     "closer to their caption than to it reversed (chance 50 %)")  # fmt: skip
    return "\n".join(lines)
