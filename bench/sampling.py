"""Frame-sampling benchmark: longvid exact / fast against full sequential decode and decord.

    python bench/sampling.py [--minutes 30] [--ns 32,64,256] [--gops 60,250] [--markdown FILE]

Generates (once, cached under .cache/bench/) 640x360 H.264 videos, x264 veryfast, scene-cut
keyframes off so the GOP is exact, with textured, panning, grainy content so decoding costs
what real footage does. Every frame carries its index in its pixels, so each method's
frames are also checked for exactness. All methods run in the same process, one after the
other, and are reported as ratios against the sequential decode of the same run.

One line per measurement, machine-readable: ``BENCH {json}``. ``--markdown`` writes the
table to a file (docs/performance.md includes it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import av
import numpy as np

from longvid.video import FrameReader, frame_index, minimum_decodes, read_index_stamp, uniform_indices
from longvid.video import container as container_mod
from longvid.video.synth import random_scene, write_video

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "bench"


def bench_video(minutes: float, gop: int) -> Path:
    path = CACHE / f"sampling_{minutes:g}min_640x360_gop{gop}.mp4"
    if not path.exists():
        num_frames = round(minutes * 60 * 30)
        scene = random_scene(1234, num_frames, width=640, height=360, fps=30, background="texture", grain=6, stamp=True)
        print(f"generating {path.name} ({num_frames} frames; once, then cached)", flush=True)
        write_video(scene, path, codec="libx264", gop=gop, crf=23, progress=True)
    return path


def fresh_index() -> None:
    """Forget cached frame indexes: every timed longvid call pays for its own demux."""
    container_mod._CACHE = container_mod._IndexCache()


def stamps_ok(frames: np.ndarray, indices: np.ndarray) -> int:
    """Number of frames whose pixels do not show the index they were returned as."""
    return sum(read_index_stamp(f) != int(i) for f, i in zip(frames, indices, strict=True))


def run_sequential(path: Path, targets: np.ndarray) -> tuple[float, int]:
    """Full sequential decode with frame threading; only targets are converted to RGB."""
    t0 = time.perf_counter()
    want = set(targets.tolist())
    index = frame_index(path)  # timeline only; its cost is included
    wrong = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            i = index.lookup(frame.pts)
            if i in want:
                rgb = frame.to_ndarray(format="rgb24")
                wrong += read_index_stamp(rgb) != i
    return time.perf_counter() - t0, wrong


def run_decord(path: Path, targets: np.ndarray) -> tuple[float, int] | None:
    try:
        import decord
    except ImportError:
        return None
    t0 = time.perf_counter()
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
    batch = vr.get_batch(targets.tolist()).asnumpy()
    seconds = time.perf_counter() - t0
    return seconds, stamps_ok(batch, targets)


def run_longvid(path: Path, n: int, fast: bool) -> tuple[float, int, object]:
    fresh_index()
    t0 = time.perf_counter()
    frames = FrameReader(path).sample(n=n, fast=fast)
    seconds = time.perf_counter() - t0
    return seconds, stamps_ok(frames.array, frames.indices), frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--ns", default="32,64,256")
    ap.add_argument("--gops", default="60,250")
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    ns = [int(v) for v in args.ns.split(",")]
    rows = []

    def emit(**rec):
        print("BENCH " + json.dumps(rec), flush=True)
        rows.append(rec)

    for gop in [int(v) for v in args.gops.split(",")]:
        path = bench_video(args.minutes, gop)
        fresh_index()
        count = len(frame_index(path))
        # The sequential decode costs the same whatever N is (conversions aside): once per
        # video, converting the largest N's targets.
        seq_s, seq_wrong = run_sequential(path, uniform_indices(count, max(ns)))
        base = dict(video=path.name, gop=gop, frames=count)
        emit(**base, n=max(ns), method="pyav_sequential", seconds=round(seq_s, 3), wrong=seq_wrong)
        for n in ns:
            targets = uniform_indices(count, n)
            need = minimum_decodes(frame_index(path), targets)
            ex_s, ex_wrong, ex = run_longvid(path, n, fast=False)
            emit(
                **base, n=n, method="longvid_exact", seconds=round(ex_s, 3), wrong=ex_wrong,
                speedup_vs_sequential=round(seq_s / ex_s, 2), packets_decoded=ex.stats.packets_decoded,
                minimum_decodes=need, decode_ratio=round(ex.stats.packets_decoded / need, 3),
                seeks=ex.stats.seeks,
            )  # fmt: skip
            fa_s, fa_wrong, fa = run_longvid(path, n, fast=True)
            moved = int((fa.indices != targets).sum())
            emit(
                **base, n=n, method="longvid_fast", seconds=round(fa_s, 3), wrong=fa_wrong,
                speedup_vs_sequential=round(seq_s / fa_s, 2), frames_moved_to_keyframe=moved,
                max_shift_s=round(float(np.abs(fa.timestamps - frame_index(path).times(targets)).max()), 3),
            )  # fmt: skip
            dec = run_decord(path, targets)
            if dec is not None:
                emit(
                    **base, n=n, method="decord_get_batch", seconds=round(dec[0], 3), wrong=dec[1],
                    speedup_vs_sequential=round(seq_s / dec[0], 2),
                    longvid_exact_vs_decord=round(dec[0] / ex_s, 2),
                )  # fmt: skip

    if args.markdown:
        args.markdown.write_text(markdown(rows))
        print(f"wrote {args.markdown}")


def markdown(rows: list[dict]) -> str:
    lines = [
        "| video | N | method | seconds | × vs sequential | wrong frames | notes |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        notes = []
        if "decode_ratio" in r:
            notes.append(f"decoded {r['packets_decoded']} / minimum {r['minimum_decodes']} = {r['decode_ratio']}×")
            notes.append(f"{r['seeks']} seeks")
        if "frames_moved_to_keyframe" in r:
            notes.append(f"{r['frames_moved_to_keyframe']} frames moved to a keyframe, max {r['max_shift_s']} s")
        if "longvid_exact_vs_decord" in r:
            notes.append(f"longvid exact is {r['longvid_exact_vs_decord']}× faster")
        speed = r.get("speedup_vs_sequential", 1.0)
        lines.append(
            f"| GOP {r['gop']} | {r['n']} | {r['method']} | {r['seconds']:.2f} | {speed:.2f} | {r['wrong']} | "
            + "; ".join(notes)
            + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
