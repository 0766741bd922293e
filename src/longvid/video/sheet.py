"""Contact sheets: a grid of frames with their timestamps, to check sampling at a glance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from longvid.errors import InvalidRequestError


def format_time(seconds: float) -> str:
    """'1:02:03.4' / '2:03.4' / '3.40s' style, compact for labels."""
    if seconds < 60:
        return f"{seconds:.2f}s"
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"


def contact_sheet(
    frames: np.ndarray,
    timestamps: np.ndarray,
    indices: np.ndarray | None = None,
    *,
    columns: int | None = None,
    thumb_width: int = 240,
    title: str | None = None,
) -> Image.Image:
    """Lay out (N, H, W, 3) frames in a grid, each labelled with its timestamp (and index)."""
    n, h, w = frames.shape[:3]
    columns = columns or max(1, min(8, math.ceil(math.sqrt(n * 16 / 9))))
    rows = math.ceil(n / columns)
    tw = thumb_width
    th = max(1, round(h * tw / w))
    label_h, pad = 18, 4
    top = 24 if title else 0
    sheet = Image.new("RGB", (columns * (tw + pad) + pad, top + rows * (th + label_h + pad) + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    if title:
        draw.text((pad, 5), title, fill=(235, 235, 235), font=font)
    for k in range(n):
        r, c = divmod(k, columns)
        x = pad + c * (tw + pad)
        y = top + pad + r * (th + label_h + pad)
        thumb = Image.fromarray(frames[k]).resize((tw, th), Image.Resampling.BILINEAR)
        sheet.paste(thumb, (x, y))
        label = format_time(float(timestamps[k]))
        if indices is not None:
            label += f"  #{int(indices[k])}"
        draw.text((x + 2, y + th + 3), label, fill=(235, 235, 235), font=font)
    return sheet


def save_contact_sheet(path: str | Path, frames, timestamps, indices=None, **kwargs) -> Path:
    path = Path(path)
    if path.suffix.lower() not in Image.registered_extensions():
        raise InvalidRequestError(f"{path}: not an image file name (use .png or .jpg)")
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(frames, timestamps, indices, **kwargs).save(path)
    return path
