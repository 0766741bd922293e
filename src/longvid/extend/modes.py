"""The names of every method in ``extend/`` a caller can choose, torch-free so the command
line and the web page can list them without importing the methods."""

from __future__ import annotations

# User-facing extension modes -> (RoPE variant, which window it scales against)
EXTEND_MODES: dict[str, tuple[str, str]] = {
    "none": ("default", "none"),
    "linear": ("linear", "language"),
    "ntk": ("ntk", "language"),
    "dynamic": ("dynamic", "language"),
    "yarn": ("yarn", "language"),
    "visual-yarn": ("yarn", "visual"),
    "visual-pi": ("default", "visual"),  # positions change, frequencies do not
}
POOLING_MODES = ("uniform", "progressive")
ANCHOR_MODES = ("fixed", "change")
# the setting docs/results.md measured progressive pooling with: anchors where the video changes
DEFAULT_ANCHORS = "change"
REARRANGE_MODES = ("none", "interleave", "chunks")
KV_BITS = (16, 8, 4, 2)
REDUCE_MODES = ("none", "uniqueness", "merge")  # content-aware token reduction (extend/reduce.py)


def choices(names) -> str:
    """'a, b or c' for help texts."""
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
