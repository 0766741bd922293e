"""Frame-index stamps: each frame of a test video carries its own index in its pixels, so a
decoded frame says which frame it is (exactness tests compare what was asked with what came
back, through any codec, seek or resize)."""

from __future__ import annotations

import numpy as np

_STAMP_BITS = 16


def _stamp_geometry(h: int, w: int) -> tuple[int, int]:
    """Cell width and row height of the stamp strip (two rows of 16 cells, top of frame)."""
    return w // _STAMP_BITS, max(2, h // 16)


def stamp_index(frame: np.ndarray, index: int) -> None:
    """Write ``index`` (< 65,536) into the top strip of ``frame`` in place: row 1 holds its
    bits (white = 1), row 2 their complement, so a misread is detected, not believed."""
    h, w = frame.shape[:2]
    cell, row = _stamp_geometry(h, w)
    for b in range(_STAMP_BITS):
        bit = (index >> b) & 1
        frame[0:row, b * cell : (b + 1) * cell] = 255 if bit else 0
        frame[row : 2 * row, b * cell : (b + 1) * cell] = 0 if bit else 255


def read_index_stamp(frame: np.ndarray) -> int | None:
    """The index written by ``stamp_index`` (works after resizing), or None if unreadable."""
    h, w = frame.shape[:2]
    cell, row = _stamp_geometry(h, w)
    band = frame[: 2 * row, : _STAMP_BITS * cell]  # the stamp's two rows of cells: the rest is never read
    gray = band.astype(np.float32).mean(axis=2) if band.ndim == 3 else band.astype(np.float32)
    value = 0
    for b in range(_STAMP_BITS):
        # centre of each cell, away from edges that compression and resizing blur
        xs = slice(b * cell + cell // 4, b * cell + max(cell // 4 + 1, 3 * cell // 4))
        top = gray[row // 4 : max(row // 4 + 1, 3 * row // 4), xs].mean()
        bottom = gray[row + row // 4 : max(row + row // 4 + 1, row + 3 * row // 4), xs].mean()
        if abs(top - bottom) < 64:
            return None
        value |= int(top > bottom) << b
    return value
