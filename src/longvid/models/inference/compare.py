"""One question asked several ways, side by side: what `longvid ask --compare` (and `make
demo`) shows. The default rows are the point of longvid: the checkpoint at the frame count it
was trained with, then at 16x as many frames as is, with a visual extension, and with
progressive pooling on top."""

from __future__ import annotations

from longvid.models.inference.encoding import Video
from longvid.models.inference.llm import VideoLLM
from longvid.models.inference.results import Answer

LONG_FACTOR = 16


def default_settings(trained_frames: int) -> list[dict]:
    """The checkpoint as trained, then 16x the frames: unmodified, visual-yarn, and
    visual-yarn with progressive pooling."""
    long = LONG_FACTOR * trained_frames
    return [
        {"frames": trained_frames, "extend": "none", "pooling": "uniform"},
        {"frames": long, "extend": "none", "pooling": "uniform"},
        {"frames": long, "extend": "visual-yarn", "pooling": "uniform"},
        {"frames": long, "extend": "visual-yarn", "pooling": "progressive"},
    ]


def compare(
    llm: VideoLLM, video: Video, question: str, settings: list[dict] | None = None, **common
) -> list[tuple[dict, Answer]]:
    """Each setting's answer to ``question`` (``common``: options every row shares)."""
    rows = settings if settings is not None else default_settings(llm.trained_frames)
    return [(row, llm.ask(video, question, **{**common, **row})) for row in rows]


def table(results: list[tuple[dict, Answer]]) -> str:
    """A Markdown table: the setting, the answer, and what it cost."""
    lines = [
        "| frames | extend | pooling | answer | visual tokens | scale | KV cache MiB | peak MiB | seconds |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row, answer in results:
        r = answer.report
        lines.append(
            f"| {r.frames} | {row['extend']} | {row['pooling']} | {answer.text or '(empty)'} | {r.visual_tokens} | "
            f"{r.scale:g} | {r.kv_cache_bytes / 2**20:.1f} | {r.peak_memory_bytes / 2**20:.0f} | "
            f"{r.seconds.get('total', 0):.1f} |"
        )
    return "\n".join(lines)
