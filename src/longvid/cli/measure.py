"""Commands that measure: probe (procedural tasks), profile (memory and time), eval (benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from longvid.cli.common import (
    EXTEND_HELP,
    KEEP_HELP,
    KV_BITS_HELP,
    POOLING_HELP,
    REDUCE_HELP,
    ExtendOption,
    FpsOption,
    KeepOption,
    KvBitsOption,
    KvBudgetOption,
    MaxFramesOption,
    MaxPixelsOption,
    MinFramesOption,
    MinPixelsOption,
    PoolingOption,
    ReduceOption,
    TotalPixelsOption,
    VisualWindowOption,
    app,
    interactive,
    parse_depths,
    parse_list,
    quiet_transformers,
)
from longvid.errors import InvalidRequestError, LongvidError
from longvid.evals.benchmarks import BENCHMARKS
from longvid.extend.modes import EXTEND_MODES, POOLING_MODES, REDUCE_MODES, choices
from longvid.models.inference.request import AskOptions
from longvid.probes.tasks import FORMS, TASKS

MODEL_HELP = "Checkpoint (default: the bundled testbed)."


@app.command()
def probe(
    task: Annotated[str, typer.Option(help=f"{choices(TASKS)}.")] = "needle",
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    frames: Annotated[str, typer.Option(help="Frame counts, e.g. 16,32,64.")] = "16,32,64",
    depths: Annotated[str | None, typer.Option(help="Needle depths, e.g. 0:1:0.25 (heatmap).")] = None,
    extend: Annotated[str, typer.Option(help=f"Comma-separated modes: {EXTEND_HELP}.")] = "none",
    pooling: Annotated[
        str, typer.Option(help=f"Comma-separated: {POOLING_HELP}, or uniform:STRIDE, budget:TOKENS, subsample:STEPS.")
    ] = "uniform",
    reduce: Annotated[str, typer.Option(help=f"Comma-separated reducers added as columns: {REDUCE_HELP}.")] = "none",
    keep: Annotated[float, typer.Option(help=KEEP_HELP)] = 0.25,
    kv_budget: Annotated[
        str | None, typer.Option(help="Comma-separated KV budgets in visual tokens per layer, added as columns.")
    ] = None,
    subsample: Annotated[
        str | None, typer.Option(help="Comma-separated step counts: the video subsampled uniformly, as columns.")
    ] = None,
    sweep: Annotated[bool, typer.Option(help="Every extension mode x every pooling and reducer.")] = False,
    samples: Annotated[int, typer.Option(help="Items per cell.")] = 20,
    form: Annotated[str, typer.Option(help=f"{choices(FORMS)} (short: one word; mc: a letter).")] = "short",
    mode: Annotated[str, typer.Option(help="cache (encode once) or full (real video files).")] = "cache",
    kv_bits: Annotated[int, typer.Option(help=f"KV cache precision in bits: {KV_BITS_HELP}.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the item set.")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (1 is fastest under contention).")] = 1,
    out: Annotated[Path, typer.Option(help="Folder for the JSON, Markdown and heatmap.")] = Path("out/probe"),
) -> None:
    """Accuracy of a model on a procedural long-video task across lengths and modes."""
    import torch

    from longvid.bundled import default_model_path
    from longvid.models import load
    from longvid.probes.runner import run_probe, write_results

    torch.set_num_threads(threads)
    quiet_transformers()
    extends = list(EXTEND_MODES) if sweep else [e.strip() for e in extend.split(",")]
    poolings = list(POOLING_MODES) if sweep else [p.strip() for p in pooling.split(",")]
    reducers = [r.strip() for r in reduce.split(",") if r.strip() not in ("", "none")]
    if sweep and not reducers:
        reducers = [r for r in REDUCE_MODES if r != "none"]
    poolings += [f"{r}:{keep:g}" for r in reducers]
    poolings += [f"budget:{n}" for n in parse_list(kv_budget, int) or []]
    poolings += [f"subsample:{n}" for n in parse_list(subsample, int) or []]
    llm = load(model)
    records = list(
        run_probe(
            llm, task, parse_list(frames, int), depths=parse_depths(depths), extends=extends, poolings=poolings,
            samples=samples, form=form, mode=mode, seed=seed, kv_bits=kv_bits, progress=interactive(),
        )
    )  # fmt: skip
    title = None
    if depths is not None:
        shown = "the bundled testbed" if llm.adapter.name == str(default_model_path()) else llm.adapter.name
        title = f"{task} ({form}) on {shown}"
    stem, table = write_results(records, out, f"{task}_{form}", extends, poolings, heatmap_title=title)
    print(table)
    if title is not None:
        print(f"heatmap: {stem}.png")
    print(f"wrote {stem}.json and {stem}.md")


@app.command()
def profile(
    video: Annotated[Path | None, typer.Argument(help="Video (default: the bundled sample).")] = None,
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    frames: Annotated[str, typer.Option(help="Frame counts, e.g. 32,64,128,256.")] = "32,64,128,256",
    pooling: PoolingOption = None,
    reduce: ReduceOption = None,
    keep: KeepOption = None,
    kv_bits: KvBitsOption = None,
    kv_budget: KvBudgetOption = None,
    extend: ExtendOption = None,
    prefill_chunk: Annotated[int | None, typer.Option(help="Tokens per prefill chunk (default: auto).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    out: Annotated[Path, typer.Option(help="Folder for the JSON and PNG.")] = Path("out/profile"),
) -> None:
    """Peak memory per stage (weights, vision, KV cache, prefill) and seconds, by frame count,
    beside the analytic figure for the 7B model of the same family."""
    from longvid.memory import return_freed_memory_to_os
    from longvid.models import load
    from longvid.models.inference.profile import plot, table
    from longvid.models.inference.profile import profile as run_profile
    from longvid.testbed.sample import default_sample

    options = AskOptions.from_mapping(dict(pooling=pooling, reduce=reduce, keep=keep, kv_bits=kv_bits, extend=extend,
                                           prefill_chunk=prefill_chunk, kv_budget=kv_budget))  # fmt: skip
    return_freed_memory_to_os()
    quiet_transformers()
    llm = load(model, device=device)
    rows = run_profile(llm, video or default_sample(), parse_list(frames, int), options)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.json").write_text(json.dumps([r.to_dict() for r in rows], indent=1))
    title = f"{llm.adapter.name} ({llm.family}), {options.pooling}, {options.kv_bits}-bit KV"
    png = plot(rows, out / "profile.png", title)
    print(table(rows))
    print(f"weights: {rows[0].weights / 2**20:.1f} MiB; wrote {out / 'profile.json'} and {png}")


@app.command("eval")
def eval_(
    bench: Annotated[str | None, typer.Option(help=f"{choices(BENCHMARKS)}.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="The benchmark's folder (layouts: docs/evals.md), or --bench jsonl's file.")
    ] = None,
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    frames: Annotated[int | None, typer.Option(help="Frames per video (default: as trained).")] = None,
    fps: FpsOption = None,
    min_frames: MinFramesOption = None,
    max_frames: MaxFramesOption = None,
    min_pixels: MinPixelsOption = None,
    max_pixels: MaxPixelsOption = None,
    total_pixels: TotalPixelsOption = None,
    extend: ExtendOption = None,
    visual_window: VisualWindowOption = None,
    pooling: PoolingOption = None,
    kv_bits: KvBitsOption = None,
    kv_budget: KvBudgetOption = None,
    reduce: ReduceOption = None,
    keep: KeepOption = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N items.")] = None,
    out: Annotated[Path, typer.Option(help="Results, one JSON line per item (resumed if present).")] = Path(
        "out/eval/results.jsonl"
    ),
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK).")] = "cpu",
    device_map: Annotated[str | None, typer.Option(help="e.g. auto: split a large checkpoint (accelerate).")] = None,
    compare: Annotated[
        tuple[Path, Path] | None, typer.Option(help="Two results files: a side-by-side table instead of a run.")
    ] = None,
    new_file: Annotated[
        bool, typer.Option(help="If --out holds a run with other settings, write OUT-2.jsonl (etc.) instead.")
    ] = False,
) -> None:
    """Run a long-video benchmark: resumable (one line per item), shardable under torchrun,
    with a table per split and a JSON summary (``OUT`` with ``.summary.json``)."""
    from longvid.evals.answerers import model_answerer
    from longvid.evals.results import free_path
    from longvid.evals.runner import Shard, device_for, format_summary, run_eval, run_identity, write_summary
    from longvid.evals.runner import compare as compare_runs

    if compare is not None:  # the runs' .run.json name their benchmark
        if bench is not None and bench not in BENCHMARKS:
            raise InvalidRequestError(f"--bench must be one of {', '.join(BENCHMARKS)} (got {bench})")
        print(compare_runs(bench, *compare))
        return
    if bench not in BENCHMARKS:
        raise InvalidRequestError(f"--bench must be one of {', '.join(BENCHMARKS)} (got {bench})")
    if data is None:
        what = (
            "FILE.jsonl is needed: your benchmark's file"
            if bench == "jsonl"
            else "DIR is needed: the folder holding the benchmark's files"
        )
        raise InvalidRequestError(f"--data {what}")
    # every option checked before the model loads or the first item runs
    options = AskOptions.from_mapping(dict(frames=frames, fps=fps, min_frames=min_frames, max_frames=max_frames,
                                           min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels,
                                           extend=extend, visual_window=visual_window, pooling=pooling,
                                           kv_bits=kv_bits, reduce=reduce, keep=keep,
                                           kv_budget=kv_budget))  # fmt: skip
    from longvid.models import load

    quiet_transformers()
    shard = Shard.from_env()
    llm = load(model, device=device_for(device, shard), visual_window=visual_window, device_map=device_map)
    if options.fps is None:  # a run's identity names the frame count it used
        options = options.replace(frames=options.frames or llm.trained_frames)
    ask = model_answerer(llm, options)
    identity = run_identity(bench, data, llm.adapter.name, ask.options)
    if new_file:
        out = free_path(out, identity)
    summary = run_eval(bench, data, out, ask, limit=limit, shard=shard, progress=interactive(), identity=identity)
    if summary is None:
        return  # ranks other than 0: rank 0 merges and reports
    written = write_summary(out, summary, identity, shard)
    print(format_summary(summary))
    print(f"wrote {out} and {written}")
    if summary["failed"]:
        raise LongvidError(f"{summary['failed']} items failed (their errors are in {out}); run again to retry them")
