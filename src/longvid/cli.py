"""The `longvid` command line. Errors from longvid become one line and a non-zero exit.

Typer (on click) is used because the commands are many and their options typed; it also
brings rich, which prints the tables.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from longvid.errors import InvalidRequestError, LongvidError

app = typer.Typer(
    name="longvid",
    help="Long-video understanding for video LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_ERROR = 2


def _parse_size(text: str | None) -> int | tuple[int, int] | None:
    """'384' (shorter side) or '640x360' (exact)."""
    if text is None:
        return None
    try:
        if "x" in text.lower():
            w, h = text.lower().split("x")
            return int(w), int(h)
        return int(text)
    except ValueError:
        raise InvalidRequestError(
            f"--size must be WxH (e.g. 640x360) or one number for the shorter side, not {text!r}"
        ) from None


def _parse_list(text: str | None, kind: type) -> list | None:
    if text is None:
        return None
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidRequestError(f"expected a comma-separated list of {kind.__name__}s, got {text!r}") from None


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
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None)
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
    for k, v in rows:
        table.add_row(f"[bold]{k}[/bold]", v)
    Console().print(table)


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
) -> None:
    """Sample frames from a video (exact by default), to an .npz file and/or a contact sheet."""
    from longvid.video import FrameReader, save_contact_sheet

    reader = FrameReader(video)
    result = reader.sample(
        n,
        indices=_parse_list(indices, int),
        fps=fps,
        max_frames=max_frames,
        timestamps=_parse_list(timestamps, float),
        size=_parse_size(size),
        fast=fast,
        tolerance=tolerance,
        strict=strict,
        progress=sys.stderr.isatty(),
    )
    if out is not None:
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
    from fractions import Fraction

    from longvid.video.synth import describe_events, random_scene, write_video

    if minutes <= 0:
        raise InvalidRequestError(f"--minutes must be > 0 (got {minutes})")
    try:
        rate = Fraction(fps)
    except (ValueError, ZeroDivisionError):
        raise InvalidRequestError(f"--fps must be a number or a fraction like 30000/1001, not {fps!r}") from None
    num_frames = max(1, round(minutes * 60 * float(rate)))
    scene = random_scene(
        seed, num_frames, width=width, height=height, fps=rate, num_events=events, background=background, stamp=stamp
    )
    write_video(scene, out, codec=codec, gop=gop, progress=sys.stderr.isatty(), write_truth=True)
    print(f"wrote {out} ({num_frames} frames, {scene.duration:.1f} s) and {out}.json with {len(scene.events)} events")
    for line in describe_events(scene.events[:10], scene.fps):
        print("  " + line)
    if len(scene.events) > 10:
        print(f"  ... {len(scene.events) - 10} more in {out}.json")


EXTEND_CHOICES = "none|linear|ntk|dynamic|yarn|visual-yarn|visual-pi"


@app.command()
def ask(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    question: Annotated[str, typer.Argument(help="Question about the video.")],
    model: Annotated[
        str | None, typer.Option(help="Checkpoint folder or hub id (default: the bundled testbed).")
    ] = None,
    frames: Annotated[int | None, typer.Option(help="Frames to sample uniformly (default: as trained).")] = None,
    extend: Annotated[str, typer.Option(help=f"Context extension: {EXTEND_CHOICES}.")] = "none",
    visual_window: Annotated[int | None, typer.Option(help="W_v in tokens (default: the family's).")] = None,
    pooling: Annotated[str, typer.Option(help="uniform (the family's own) or progressive.")] = "uniform",
    group: Annotated[int, typer.Option(help="Progressive pooling: frames per anchor.")] = 4,
    high: Annotated[int | None, typer.Option(help="Stride of anchor frames (default: the family's).")] = None,
    low: Annotated[int | None, typer.Option(help="Stride of other frames (default: 2 x high).")] = None,
    anchors: Annotated[str, typer.Option(help="Progressive anchors: fixed or change.")] = "fixed",
    kv_bits: Annotated[int, typer.Option(help="KV cache precision: 16, 8, 4 or 2 bits.")] = 16,
    rearrange: Annotated[str, typer.Option(help="INTP: none, interleave or chunks.")] = "none",
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer in tokens.")] = 32,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Answer a question about a video, with a report of frames, tokens, memory and time."""
    from longvid.memory import return_freed_memory_to_os
    from longvid.models import load

    return_freed_memory_to_os()
    _quiet_transformers()
    llm = load(model, device=device, visual_window=visual_window)
    answer = llm.ask(
        video,
        question,
        frames=frames,
        extend=extend,
        pooling=pooling,
        group=group,
        high=high,
        low=low,
        anchors=anchors,
        kv_bits=kv_bits,
        rearrange=rearrange,
        max_new_tokens=max_new_tokens,
        progress=sys.stderr.isatty() and not as_json,
    )
    if as_json:
        print(json.dumps(answer.to_dict()))
        return
    from rich.console import Console
    from rich.table import Table

    r = answer.report
    console = Console()
    console.print(f"[bold]answer:[/bold] {answer.text}")
    table = Table(show_header=False, box=None)
    per_frame = sorted(set(r.tokens_per_frame))
    rows = [
        ("model", f"{r.model} ({r.family})"),
        ("frames", f"{r.frames} (#{r.frame_indices[0]} .. #{r.frame_indices[-1]}, {r.timestamps[-1]:.1f} s)"),
        ("pooling", f"{r.pooling}; tokens/frame {', '.join(str(v) for v in per_frame)}"),
        ("visual tokens", f"{r.visual_tokens_before_pooling} -> {r.visual_tokens}"),
        ("extension", f"{r.extend}, W_v {r.visual_window}, W_l {r.language_window}, scale {r.scale}"),
        ("KV cache", f"{r.kv_bits}-bit ({r.kv_backend}), {r.kv_cache_bytes / 2**20:.1f} MiB"),
        ("peak memory", f"{r.peak_memory_bytes / 2**20:.0f} MiB ({r.memory_device})"),
        ("seconds", ", ".join(f"{k} {v:.2f}" for k, v in r.seconds.items())),
    ]
    for k, v in rows:
        table.add_row(f"[bold]{k}[/bold]", v)
    console.print(table)


@app.command()
def tiny(
    family: Annotated[
        str, typer.Argument(help="llava_onevision, qwen2_vl, qwen2_5_vl, llava_next_video or video_llava.")
    ],
    out: Annotated[Path, typer.Argument(help="Folder to write the checkpoint to.")],
    grid: Annotated[int, typer.Option(help="Patches per frame side.")] = 8,
    hidden: Annotated[int, typer.Option(help="Language model width.")] = 64,
    layers: Annotated[int, typer.Option(help="Language model layers.")] = 2,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write a tiny random checkpoint of a supported family (for trying the pipeline offline)."""
    from longvid.models.tiny import save

    _quiet_transformers()
    path = save(family, out, grid=grid, hidden=hidden, layers=layers, seed=seed)
    print(f"wrote a tiny random {family} checkpoint to {path}")


@app.command()
def prepare(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    question: Annotated[str, typer.Argument(help="The question.")],
    model: Annotated[str, typer.Option(help="Checkpoint folder or hub id (config, tokenizer, processor files).")],
    out: Annotated[Path, typer.Option(help="Where to write the inputs (.safetensors).")],
    frames: Annotated[int | None, typer.Option(help="Frames to sample (default: the checkpoint's).")] = None,
    fast_resize: Annotated[bool, typer.Option(help="Resize in the decoder (faster, not the official pixels).")] = False,
) -> None:
    """Write the inputs a checkpoint's official processor would give (input_ids,
    attention_mask, pixel_values_videos, ...) from longvid's sampling and preprocessing;
    run them with plain transformers: model.generate(**safetensors.torch.load_file(OUT))."""
    from safetensors.torch import save_file

    from longvid.models.prepare import prepare as prepare_inputs

    _quiet_transformers()
    inputs = prepare_inputs(model, video, question, frames=frames, fast_resize=fast_resize)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in inputs.items()}, str(out))
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in inputs.items())
    print(f"wrote {out}: {shapes}")


@app.command()
def inspect(
    model: Annotated[str, typer.Option(help="Checkpoint folder or hub id (no weights needed).")],
    video: Annotated[Path | None, typer.Option(help="Video for the pixel check (default: the bundled sample).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What longvid feeds a checkpoint: family, prompt, tokens per frame, visual window,
    preprocessing, and longvid's pixels against the official processor's."""
    import json

    from longvid.models.describe import SAMPLE, describe

    _quiet_transformers()
    report = describe(model, video=video or SAMPLE)
    if as_json:
        print(json.dumps(report, indent=1))
        return
    for key, value in report.items():
        shown = repr(value) if key == "prompt" else value
        print(f"{key:>34}  {shown}")


ALL_EXTENDS = ["none", "linear", "ntk", "dynamic", "yarn", "visual-yarn", "visual-pi"]


def _parse_depths(text: str | None) -> list[float] | None:
    """'0:1:0.25' (start:stop:step, stop included) or '0,0.5,1'."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError
            count = round((stop - start) / step) + 1
            values = [round(start + i * step, 6) for i in range(count)]
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidRequestError(f"--depths must be start:stop:step or a list like 0,0.5,1 (got {text!r})") from None
    if any(not 0 <= v <= 1 for v in values):
        raise InvalidRequestError("--depths must lie in [0, 1]")
    return values


@app.command()
def probe(
    task: Annotated[str, typer.Option(help="needle, count or order.")] = "needle",
    model: Annotated[str | None, typer.Option(help="Checkpoint (default: the bundled testbed).")] = None,
    frames: Annotated[str, typer.Option(help="Frame counts, e.g. 16,32,64.")] = "16,32,64",
    depths: Annotated[str | None, typer.Option(help="Needle depths, e.g. 0:1:0.25 (heatmap).")] = None,
    extend: Annotated[str, typer.Option(help=f"Comma-separated modes: {EXTEND_CHOICES}.")] = "none",
    pooling: Annotated[str, typer.Option(help="Comma-separated: uniform, progressive.")] = "uniform",
    sweep: Annotated[bool, typer.Option(help="Every extension mode x both poolings.")] = False,
    samples: Annotated[int, typer.Option(help="Items per cell.")] = 20,
    form: Annotated[str, typer.Option(help="short (one word) or mc (letter).")] = "short",
    mode: Annotated[str, typer.Option(help="cache (encode once) or full (real video files).")] = "cache",
    kv_bits: Annotated[int, typer.Option(help="KV cache precision: 16, 8, 4 or 2.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the item set.")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (1 is fastest under contention).")] = 1,
    out: Annotated[Path, typer.Option(help="Folder for the JSON, Markdown and heatmap.")] = Path("out/probe"),
) -> None:
    """Accuracy of a model on a procedural long-video task across lengths and modes."""
    import torch

    from longvid.models import load
    from longvid.probes.runner import heatmap, markdown, run_probe, summarize, to_jsonable

    torch.set_num_threads(threads)
    _quiet_transformers()
    extends = ALL_EXTENDS if sweep else [e.strip() for e in extend.split(",")]
    poolings = ["uniform", "progressive"] if sweep else [p.strip() for p in pooling.split(",")]
    frame_list = _parse_list(frames, int)
    llm = load(model)
    records = list(
        run_probe(
            llm, task, frame_list, depths=_parse_depths(depths), extends=extends, poolings=poolings,
            samples=samples, form=form, mode=mode, seed=seed, kv_bits=kv_bits, progress=sys.stderr.isatty(),
        )
    )  # fmt: skip
    rows = summarize(records)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{task}_{form}"
    (stem.with_suffix(".json")).write_text(
        json.dumps({"rows": to_jsonable(rows), "records": [r.__dict__ for r in records]}, indent=1)
    )
    table = markdown(rows, extends, poolings)
    stem.with_suffix(".md").write_text(table)
    print(table)
    if depths is not None:
        from longvid.testbed import default_model_path

        shown = "the bundled testbed" if llm.adapter.name == str(default_model_path()) else llm.adapter.name
        png = heatmap(records, stem.with_suffix(".png"), title=f"{task} ({form}) on {shown}")
        print(f"heatmap: {png}")
    print(f"wrote {stem}.json and {stem}.md")


@app.command()
def profile(
    video: Annotated[Path | None, typer.Argument(help="Video (default: the bundled sample).")] = None,
    model: Annotated[str | None, typer.Option(help="Checkpoint (default: the bundled testbed).")] = None,
    frames: Annotated[str, typer.Option(help="Frame counts, e.g. 32,64,128,256.")] = "32,64,128,256",
    pooling: Annotated[str, typer.Option(help="uniform or progressive.")] = "uniform",
    kv_bits: Annotated[int, typer.Option(help="KV cache precision: 16, 8, 4 or 2.")] = 16,
    extend: Annotated[str, typer.Option(help=f"Context extension: {EXTEND_CHOICES}.")] = "none",
    prefill_chunk: Annotated[int | None, typer.Option(help="Tokens per prefill chunk (default: auto).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    out: Annotated[Path, typer.Option(help="Folder for the JSON and PNG.")] = Path("out/profile"),
) -> None:
    """Peak memory per stage (weights, vision, KV cache, prefill) and seconds, by frame count,
    beside the analytic figure for the 7B model of the same family."""
    from longvid.memory import return_freed_memory_to_os
    from longvid.models import load
    from longvid.models.profile import plot, table
    from longvid.models.profile import profile as run_profile
    from longvid.testbed.sample import default_sample

    return_freed_memory_to_os()
    _quiet_transformers()
    llm = load(model, device=device)
    rows = run_profile(
        llm, video or default_sample(), _parse_list(frames, int), pooling=pooling, kv_bits=kv_bits, extend=extend,
        prefill_chunk=prefill_chunk,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.json").write_text(json.dumps([r.to_dict() for r in rows], indent=1))
    png = plot(rows, out / "profile.png", f"{llm.adapter.name} ({llm.family}), {pooling}, {kv_bits}-bit KV")
    print(table(rows))
    print(f"weights: {rows[0].weights / 2**20:.1f} MiB; wrote {out / 'profile.json'} and {png}")


@app.command("eval")
def eval_(
    bench: Annotated[str | None, typer.Option(help="mlvu, videomme, longvideobench or egoschema.")] = None,
    data: Annotated[Path | None, typer.Option(help="The benchmark's folder (layouts: docs/evals.md).")] = None,
    model: Annotated[str | None, typer.Option(help="Checkpoint (default: the bundled testbed).")] = None,
    frames: Annotated[int | None, typer.Option(help="Frames per video (default: as trained).")] = None,
    extend: Annotated[str, typer.Option(help=f"Context extension: {EXTEND_CHOICES}.")] = "none",
    visual_window: Annotated[int | None, typer.Option(help="W_v in tokens (default: the family's).")] = None,
    pooling: Annotated[str, typer.Option(help="uniform or progressive.")] = "uniform",
    kv_bits: Annotated[int, typer.Option(help="KV cache precision: 16, 8, 4 or 2.")] = 16,
    limit: Annotated[int | None, typer.Option(help="Only the first N items.")] = None,
    out: Annotated[Path, typer.Option(help="Results, one JSON line per item (resumed if present).")] = Path(
        "out/eval/results.jsonl"
    ),
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK).")] = "cpu",
    device_map: Annotated[str | None, typer.Option(help="e.g. auto: split a large checkpoint (accelerate).")] = None,
    compare: Annotated[
        tuple[Path, Path] | None, typer.Option(help="Two results files: a side-by-side table instead of a run.")
    ] = None,
) -> None:
    """Run a long-video benchmark: resumable (one line per item), shardable under torchrun,
    with a table per split and a JSON summary (``OUT`` with ``.summary.json``)."""
    import os

    from longvid.evals.benchmarks import BENCHMARKS
    from longvid.evals.runner import Shard, format_summary, run_eval
    from longvid.evals.runner import compare as compare_runs

    if bench not in BENCHMARKS:
        raise InvalidRequestError(f"--bench must be one of {', '.join(BENCHMARKS)} (got {bench})")
    if compare is not None:
        print(compare_runs(bench, *compare))
        return
    if data is None:
        raise InvalidRequestError("--data DIR is needed: the folder holding the benchmark's files")
    from longvid.models import load

    _quiet_transformers()
    shard = Shard.from_env()
    if device.startswith("cuda") and shard.world > 1 and ":" not in device:
        device = f"cuda:{os.environ.get('LOCAL_RANK', shard.rank)}"
    llm = load(model, device=device, visual_window=visual_window, device_map=device_map)

    def ask(video, prompt):
        answer = llm.ask(video, prompt, frames=frames, extend=extend, pooling=pooling, kv_bits=kv_bits,
                         max_new_tokens=16)  # fmt: skip
        r = answer.report
        return answer.text, {"frames": r.frames, "visual_tokens": r.visual_tokens}

    summary = run_eval(bench, data, out, ask, limit=limit, shard=shard, progress=sys.stderr.isatty())
    if summary is None:
        return  # ranks other than 0: rank 0 merges and reports
    summary["config"] = {
        "model": llm.adapter.name, "frames": frames or llm.trained_frames, "extend": extend, "pooling": pooling,
        "kv_bits": kv_bits, "processes": shard.world,
    }  # fmt: skip
    out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=1))
    print(format_summary(summary))
    print(f"wrote {out} and {out.with_suffix('.summary.json')}")


@app.command()
def serve(
    model: Annotated[str | None, typer.Option(help="Checkpoint (default: the bundled testbed).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 7860,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    max_upload_mb: Annotated[float, typer.Option(help="Largest video upload, in MB.")] = 512,
) -> None:
    """A web page: upload a video (or use the sample), ask, and see the answer with the frames
    the model saw, tokens per frame, memory and time."""
    from longvid.web.server import serve as run_server

    _quiet_transformers()
    if max_upload_mb <= 0:
        raise InvalidRequestError(f"--max-upload-mb must be positive (got {max_upload_mb})")
    run_server(model, host=host, port=port, device=device, max_upload_mb=max_upload_mb)


testbed_app = typer.Typer(help="The bundled testbed model: train it, or print its card.", no_args_is_help=True)
app.add_typer(testbed_app, name="testbed")


@testbed_app.command("train")
def testbed_train(
    out: Annotated[Path, typer.Option(help="Checkpoint folder to write.")] = Path("out/testbed"),
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (1: see the training module's note).")] = 1,
    stage1: Annotated[
        Path | None, typer.Option(help="Continue from this stage-1 checkpoint instead of training it (44 min).")
    ] = None,
) -> None:
    """Train the testbed on the probe tasks at <= 16 frames: from scratch, then an order-heavy stage (seeded)."""
    from longvid.testbed.train import train_recipe

    _quiet_transformers()
    card = train_recipe(out, seed=seed, threads=threads, stage1=stage1)
    print(f"wrote {out}: " + _card_accuracy(card))


def _card_accuracy(card: dict) -> str:
    """'needle 100% (99-100, n=400), ...' from a recipe's card; a single stage's card (e.g.
    ``<out>.stage1``): its last in-training evaluation."""
    if "accuracy" in card:
        return ", ".join(
            f"{task} {100 * a['accuracy']:.0f}% ({100 * a['low']:.0f}-{100 * a['high']:.0f}, n={a['n']})"
            for task, a in card["accuracy"].items()
        )
    last = card["history"][-1]
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in last.items() if "/" in k)


@testbed_app.command("card")
def testbed_card(
    model: Annotated[Path | None, typer.Option(help="Checkpoint folder (default: the bundled testbed).")] = None,
) -> None:
    """Print the testbed's config, training data, training length and accuracy."""
    from longvid.testbed import default_model_path

    folder = model or default_model_path()
    card_path = Path(folder) / "card.json"
    if not card_path.exists():
        raise InvalidRequestError(f"{folder}: no card.json (not a longvid testbed checkpoint)")
    card = json.loads(card_path.read_text())
    stages = card.get("stages", [card])
    print(card["what"])
    print(
        f"parameters: {card['parameters']:,}; visual window {card['visual_window']} tokens; "
        f"language window {card['language_window']}"
    )
    print(f"training data: {card['training_data']}")
    steps = " + ".join(str(st["history"][-1]["step"]) for st in stages)
    print(f"training: {steps} steps, {card['train_minutes']} min; reproduce with: {card['command']}")
    print("held-out accuracy at the training length: " + _card_accuracy(card))
    for i, st in enumerate(stages, 1):
        print(f"stage {i} config: " + ", ".join(f"{k}={v}" for k, v in st["train_config"].items()))


encoder_app = typer.Typer(
    help="Video-first encoder recipe: synthetic data, contrastive training, evaluation, captioning.",
    no_args_is_help=True,
)
app.add_typer(encoder_app, name="encoder")


def _parse_overrides(pairs: list[str] | None) -> dict:
    """``key=value`` pairs; values read as TOML (numbers, booleans, quoted strings), else text."""
    import tomllib

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidRequestError(f"--set wants key=value (got {pair!r})")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


@encoder_app.command("train")
def encoder_train(
    config: Annotated[Path, typer.Argument(help="TOML or YAML training config.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: key=value.")] = None,
) -> None:
    """Contrastive video-text training (resumes from OUT/checkpoint.pt; runs under torchrun)."""
    from longvid.encoder.train import load_config, train

    _quiet_transformers()
    cfg = load_config(config, _parse_overrides(set_))
    record = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        print(json.dumps(record))


@encoder_app.command("eval")
def encoder_eval(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file or the training's out folder.")],
    manifest: Annotated[Path, typer.Option(help="JSONL manifest of clips and captions.")],
    frames: Annotated[int | None, typer.Option(help="Frames per clip (default: the training's).")] = None,
    mask_ratio: Annotated[float, typer.Option(help="Mask tubelets at inference too.")] = 0.0,
    batch: Annotated[int, typer.Option()] = 16,
    long: Annotated[
        str | None,
        typer.Option(help="More frames than trained: interleave (INTP), chunks, or interpolate."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Text->video and video->text R@1/5/10, and the temporal-order probe."""
    from longvid.encoder.evaluate import evaluate_manifest, format_report
    from longvid.encoder.long import LONG_MODES
    from longvid.encoder.train import load_encoder

    _quiet_transformers()
    model, cfg = load_encoder(checkpoint)
    if long is not None and long not in LONG_MODES:
        raise InvalidRequestError(f"unknown --long {long!r}; choose from {', '.join(LONG_MODES)}")
    n = frames or cfg.frames
    result = evaluate_manifest(model, manifest, n, batch, mask_ratio, not as_json, long, cfg.frames)
    print(json.dumps(result) if as_json else format_report(result))


@encoder_app.command("synth")
def encoder_synth(
    out: Annotated[Path, typer.Argument(help="Folder for videos/ and manifest.jsonl.")],
    n: Annotated[int, typer.Option(help="Number of clips.")] = 256,
    frames: Annotated[int, typer.Option()] = 32,
    size: Annotated[int, typer.Option(help="Frame side in pixels.")] = 64,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write a synthetic video-text set whose captions tell the events in order."""
    from longvid.encoder.data import write_synthetic_set

    if n < 1 or frames < 2:
        raise InvalidRequestError("need n >= 1 and frames >= 2")
    print(f"wrote {write_synthetic_set(out, n, frames=frames, size=size, seed=seed)}")


@encoder_app.command("caption-train")
def encoder_caption_train(
    encoder: Annotated[Path, typer.Option(help="Trained encoder (checkpoint or its folder); stays frozen.")],
    lm: Annotated[Path, typer.Option(help="A transformers causal LM folder; stays frozen.")],
    manifest: Annotated[Path, typer.Option(help="JSONL manifest of clips and captions.")],
    out: Annotated[Path, typer.Option(help="Folder for the captioner.")] = Path("out/captioner"),
    steps: Annotated[int, typer.Option()] = 300,
    batch: Annotated[int, typer.Option()] = 16,
    lr: Annotated[float, typer.Option()] = 1e-3,
    frames: Annotated[int | None, typer.Option(help="Frames per clip (default: the encoder's).")] = None,
    latents: Annotated[int, typer.Option(help="Perceiver resampler latents.")] = 64,
    every: Annotated[int, typer.Option(help="Gated cross-attention before every k-th LM layer.")] = 1,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 1,
) -> None:
    """Train the resampler and gated cross-attention layers on the captioning loss."""
    from longvid.encoder.captioner import CaptionerConfig, train_captioner

    _quiet_transformers()
    cfg = CaptionerConfig(latents=latents, every=every)
    losses = train_captioner(encoder, lm, manifest, out, steps=steps, batch=batch, lr=lr, frames=frames,
                             config=cfg, seed=seed, threads=threads)  # fmt: skip
    print(f"wrote {out}: loss {losses[0]:.3f} -> {losses[-1]:.3f}")


@encoder_app.command("caption")
def encoder_caption(
    videos: Annotated[list[Path], typer.Argument(help="Video files.")],
    model: Annotated[Path, typer.Option(help="Captioner folder (from caption-train).")],
    manifest: Annotated[Path | None, typer.Option(help="Score against a manifest's captions (ROUGE-L).")] = None,
    max_new_tokens: Annotated[int, typer.Option()] = 32,
) -> None:
    """Caption videos; with --manifest, caption its clips and report ROUGE-L."""
    import torch

    from longvid.encoder.captioner import load_captioner, rouge_l
    from longvid.encoder.data import Clip, read_manifest
    from longvid.encoder.train import load_pixels

    _quiet_transformers()
    captioner, meta = load_captioner(model)
    clips = [Clip(v, "") for v in videos]
    if manifest is not None:
        clips += read_manifest(manifest)[0]
    if not clips:
        raise InvalidRequestError("give video files or --manifest")
    size = captioner.encoder.config.image_size
    predictions = []
    for i in range(0, len(clips), 16):
        part = clips[i : i + 16]
        pixels = torch.stack([load_pixels(c, meta["frames"], size) for c in part])
        predictions += captioner.generate(pixels, max_new_tokens)
    for clip, text in zip(clips, predictions, strict=True):
        print(f"{clip.video}\t{text}")
    scored = [(p, c.caption) for p, c in zip(predictions, clips, strict=True) if c.caption]
    if scored:
        print(f"ROUGE-L {rouge_l(*map(list, zip(*scored, strict=True))):.3f} over {len(scored)} captioned clips")


def _quiet_transformers() -> None:
    """transformers' own progress bars and warnings would bury the answer."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"longvid: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; longvid errors become one line on stderr and exit code 2.

    Typer handles usage errors itself (message, exit code 2); anything longvid raises on
    purpose is a ``LongvidError`` and is printed here without a traceback.
    """
    warnings.showwarning = _show_warning
    try:
        app(args=argv, prog_name="longvid")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        print("longvid: interrupted", file=sys.stderr)
        return 130
    except LongvidError as e:
        print(f"longvid: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
