"""Commands on videos: info, frames, synth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from longvid.cli.common import app, interactive, parse_list, parse_size, print_table
from longvid.errors import InvalidRequestError


@app.command()
def info(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    exact: Annotated[bool, typer.Option(help="Index every packet: exact frame count and keyframe spacing.")] = False,
) -> None:
    """Describe a video: duration, frame rate, frame count, size, codec, keyframe spacing."""
    from longvid.video import probe

    vi = probe(video, exact=exact)
    if as_json:
        print(json.dumps(vi.to_dict()))
        return
    count = f"{vi.frame_count}" + ("" if vi.frame_count_exact else " (estimated; --exact counts)")
    kf = "unknown" if vi.keyframe_interval is None else f"every {vi.keyframe_interval:.1f} frames"
    rows = [
        ("file", vi.path),
        ("duration", f"{vi.duration:.3f} s"),
        ("fps", f"{float(vi.fps):.3f} ({vi.fps.numerator}/{vi.fps.denominator})"),
        ("frames", count),
        ("size", f"{vi.width}x{vi.height}"),
        ("codec", f"{vi.codec} ({vi.pix_fmt})"),
        ("keyframes", kf),
    ]
    print_table(rows)


@app.command()
def frames(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    n: Annotated[int | None, typer.Option("-n", "--num", help="N frames spread uniformly, first to last.")] = None,
    indices: Annotated[str | None, typer.Option(help="Explicit frame indices, e.g. 0,10,20.")] = None,
    fps: Annotated[float | None, typer.Option(help="Frames per second to sample.")] = None,
    max_frames: Annotated[int | None, typer.Option(help="With --fps: at most this many (uniform).")] = None,
    timestamps: Annotated[str | None, typer.Option(help="Seconds, e.g. 0,1.5,30.")] = None,
    size: Annotated[str | None, typer.Option(help="WxH, or one number for the shorter side.")] = None,
    fast: Annotated[bool, typer.Option(help="Allow the nearest keyframe within --tolerance.")] = False,
    tolerance: Annotated[float | None, typer.Option(help="Seconds, for --fast (default: half the gap).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail instead of clamping or skipping frames.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write frames, indices, timestamps to an .npz file.")] = None,
    sheet: Annotated[Path | None, typer.Option(help="Write a contact sheet PNG.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print indices, timestamps and stats as JSON.")] = False,
    workers: Annotated[
        int | None, typer.Option(help="Processes decoding side by side (default: from the cores and the plan).")
    ] = None,
) -> None:
    """Sample frames from a video (exact by default), to an .npz file and/or a contact sheet."""
    from longvid.video import FrameReader, save_contact_sheet

    reader = FrameReader(video)
    result = reader.sample(
        n,
        indices=parse_list(indices, int),
        fps=fps,
        max_frames=max_frames,
        timestamps=parse_list(timestamps, float),
        size=parse_size(size),
        fast=fast,
        tolerance=tolerance,
        strict=strict,
        progress=interactive(),
        workers=workers,
    )
    if out is not None:
        if out.is_dir():
            raise InvalidRequestError(f"--out {out} is a folder; name an .npz file")
        out = out if out.suffix == ".npz" else out.with_name(out.name + ".npz")  # what numpy writes
        out.parent.mkdir(parents=True, exist_ok=True)
        result.save_npz(out)
    if sheet is not None:
        title = f"{video.name}: {len(result)} frames" + (" (fast)" if fast else "")
        save_contact_sheet(sheet, result.array, result.timestamps, result.indices, title=title)
    summary = {
        "video": str(video),
        "frames": len(result),
        "shape": list(result.array.shape),
        "indices": result.indices.tolist(),
        "timestamps": [round(float(t), 6) for t in result.timestamps],
        "skipped": list(result.skipped),
        "stats": result.stats.to_dict(),
    }
    if as_json:
        print(json.dumps(summary))
        return
    h, w = result.array.shape[1:3]
    shown = ", ".join(f"#{i}@{t:.2f}s" for i, t in zip(summary["indices"][:8], summary["timestamps"][:8], strict=True))
    more = " ..." if len(result) > 8 else ""
    print(f"{len(result)} frames {w}x{h} from {video}: {shown}{more}")
    st = result.stats
    print(f"decoded {st.packets_decoded} packets in {st.segments} segment(s), {st.seeks} seek(s)")
    for label, path in (("npz", out), ("sheet", sheet)):
        if path is not None:
            print(f"wrote {label}: {path}")


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Output video (.mp4, .mkv, .webm).")],
    minutes: Annotated[float, typer.Option(help="Length in minutes.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same video).")] = 0,
    width: Annotated[int, typer.Option()] = 320,
    height: Annotated[int, typer.Option()] = 240,
    fps: Annotated[str, typer.Option(help="Frame rate, e.g. 30 or 30000/1001.")] = "10",
    codec: Annotated[str, typer.Option(help="libx264, libvpx-vp9 or mpeg4.")] = "libx264",
    gop: Annotated[int, typer.Option(help="Keyframe interval in frames (exact).")] = 30,
    events: Annotated[int | None, typer.Option(help="Number of events (default: by length).")] = None,
    background: Annotated[str, typer.Option(help="plain, gradient or texture.")] = "gradient",
    stamp: Annotated[bool, typer.Option(help="Write each frame's index into its pixels.")] = False,
) -> None:
    """Generate a procedural video with ground-truth events (written beside it as .json)."""
    import math
    from fractions import Fraction

    from longvid.video.synth import describe_events, random_scene, write_video

    if not (math.isfinite(minutes) and minutes > 0):
        raise InvalidRequestError(f"--minutes must be a number > 0 (got {minutes})")
    try:
        rate = Fraction(fps)
    except (ValueError, ZeroDivisionError):
        raise InvalidRequestError(f"--fps must be a number or a fraction like 30000/1001, not {fps!r}") from None
    if rate <= 0:
        raise InvalidRequestError(f"--fps must be > 0 (got {fps})")
    for name, side in (("--width", width), ("--height", height)):
        if side < 16 or side % 2:
            raise InvalidRequestError(f"{name} must be an even number of pixels >= 16 (got {side})")
    if out.is_dir() or out.suffix.lower() not in (".mp4", ".mkv", ".webm", ".avi", ".mov"):
        raise InvalidRequestError(f"--out must name a video file (.mp4, .mkv, .webm), not {out}")
    num_frames = max(1, round(minutes * 60 * float(rate)))
    scene = random_scene(
        seed, num_frames, width=width, height=height, fps=rate, num_events=events, background=background, stamp=stamp
    )
    write_video(scene, out, codec=codec, gop=gop, progress=interactive(), write_truth=True)
    print(f"wrote {out} ({num_frames} frames, {scene.duration:.1f} s) and {out}.json with {len(scene.events)} events")
    for line in describe_events(scene.events[:10], scene.fps):
        print("  " + line)
    if len(scene.events) > 10:
        print(f"  ... {len(scene.events) - 10} more in {out}.json")
