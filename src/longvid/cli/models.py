"""Commands on checkpoints: ask, serve, prepare, inspect, tiny."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from longvid.cli.common import (
    ANCHORS_HELP,
    REARRANGE_HELP,
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
    default,
    interactive,
    print_table,
    quiet_transformers,
)
from longvid.errors import InvalidRequestError
from longvid.models.families import FAMILIES
from longvid.models.inference.request import AskOptions, check_question

MODEL_HELP = "Checkpoint folder or hub id (default: the bundled testbed)."


@app.command()
def ask(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    question: Annotated[str | None, typer.Argument(help="Question about the video (or -q, repeatable).")] = None,
    more: Annotated[
        list[str] | None,
        typer.Option("-q", "--question", help="A question; repeat for several (one encoding, one shared prefill)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    frames: Annotated[int | None, typer.Option(help="Frames to sample uniformly (default: as trained).")] = None,
    fps: FpsOption = None,
    min_frames: MinFramesOption = None,
    max_frames: MaxFramesOption = None,
    min_pixels: MinPixelsOption = None,
    max_pixels: MaxPixelsOption = None,
    total_pixels: TotalPixelsOption = None,
    extend: ExtendOption = None,
    visual_window: VisualWindowOption = None,
    pooling: PoolingOption = None,
    group: Annotated[
        int | None, typer.Option(help=f"Progressive pooling: frames per anchor {default('group')}.")
    ] = None,
    high: Annotated[int | None, typer.Option(help="Stride of anchor frames (default: the family's).")] = None,
    low: Annotated[int | None, typer.Option(help="Stride of other frames (default: 2 x high).")] = None,
    anchors: Annotated[
        str | None, typer.Option(help=f"Progressive anchors: {ANCHORS_HELP} (default: change; fixed with --rearrange).")
    ] = None,
    reduce: ReduceOption = None,
    keep: KeepOption = None,
    kv_bits: KvBitsOption = None,
    kv_budget: KvBudgetOption = None,
    rearrange: Annotated[str | None, typer.Option(help=f"INTP: {REARRANGE_HELP} {default('rearrange')}.")] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help=f"Longest answer in tokens {default('max_new_tokens')}.")
    ] = None,
    fast_resize: Annotated[bool, typer.Option(help="Resize in the decoder (faster, not the official pixels).")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    compare: Annotated[
        bool,
        typer.Option(
            help="Ask four ways, side by side: the trained frame count, then 16x the frames unmodified, "
            "with visual-yarn, and with visual-yarn + progressive pooling (--frames, --extend, --pooling ignored)."
        ),
    ] = False,
) -> None:
    """Answer a question about a video, with a report of frames, tokens, memory and time."""
    from longvid.memory import return_freed_memory_to_os
    from longvid.models import load

    questions = ([question] if question is not None else []) + list(more or [])
    if not questions:
        raise InvalidRequestError("ask what? give a question (or -q QUESTION, repeatable)")
    for q in questions:
        check_question(q)
    # one request value, its defaults and checks in one place (refused here, before loading)
    options = AskOptions.from_mapping(dict(
        frames=frames, fps=fps, min_frames=min_frames, max_frames=max_frames, min_pixels=min_pixels,
        max_pixels=max_pixels, total_pixels=total_pixels, extend=extend, visual_window=visual_window, pooling=pooling,
        group=group, high=high, low=low,
        anchors=anchors, reduce=reduce, keep=keep, kv_bits=kv_bits, rearrange=rearrange, max_new_tokens=max_new_tokens,
        fast_resize=fast_resize, kv_budget=kv_budget,
    ))  # fmt: skip
    return_freed_memory_to_os()
    quiet_transformers()
    llm = load(model, device=device, visual_window=visual_window)
    if compare:
        from longvid.models.inference.compare import compare as compare_settings
        from longvid.models.inference.compare import table

        common = {"kv_bits": options.kv_bits, "max_new_tokens": options.max_new_tokens, "fast_resize": fast_resize,
                  "kv_budget": options.kv_budget}  # fmt: skip
        results = compare_settings(llm, video, questions[0], progress=interactive() and not as_json, **common)
        if as_json:
            print(json.dumps([{**row, **answer.to_dict()} for row, answer in results]))
            return
        shown = "the bundled testbed" if model is None else llm.adapter.name
        print(f"{questions[0]}  ({shown}, trained on {llm.trained_frames} frames)")
        print(table(results))
        return
    answers = llm.ask(video, questions, options, progress=interactive() and not as_json)
    if as_json:
        shown = [{"question": q, **a.to_dict()} for q, a in zip(questions, answers, strict=True)]
        print(json.dumps(shown[0] if len(shown) == 1 else shown))
        return
    for q, a in zip(questions, answers, strict=True):
        print(f"answer: {a.text}" if len(questions) == 1 else f"{q}\n  answer: {a.text}")
    r = answers[0].report
    per_frame = sorted(set(r.tokens_per_frame))
    print_table([
        ("model", f"{r.model} ({r.family})"),
        ("frames", f"{r.frames} (#{r.frame_indices[0]} .. #{r.frame_indices[-1]}, {r.timestamps[-1]:.1f} s)"),
        ("pooling", f"{r.pooling}, reduce {r.reduce}; tokens/frame {', '.join(str(v) for v in per_frame[:12])}"
                    + (" ..." if len(per_frame) > 12 else "")),
        ("visual tokens", f"{r.visual_tokens_before_pooling} -> {r.visual_tokens}"),
        ("extension", f"{r.extend}, W_v {r.visual_window}, W_l {r.language_window}, scale {r.scale}; "
                      f"the checkpoint's own RoPE: {r.own_rope}"),
        ("KV cache", f"{r.kv_bits}-bit ({r.kv_backend}), {r.kv_cache_bytes / 2**20:.1f} MiB"
                     + (f"; budget {r.kv_budget}: {r.kv_budget_tokens} visual tokens a layer, "
                        f"{r.kv_dropped_tokens} of {r.visual_tokens} dropped" if r.kv_budget else "")),
        ("peak memory", f"{r.peak_memory_bytes / 2**20:.0f} MiB ({r.memory_device})"),
        ("seconds", ", ".join(f"{k} {v:.2f}" for k, v in r.seconds.items())),
        *([("shared prefill", f"{r.shared_prefix_tokens} tokens prefilled once for {len(questions)} questions")]
          if r.shared_prefix_tokens and len(questions) > 1 else []),
    ])  # fmt: skip


@app.command()
def models() -> None:
    """The supported model families: config model_type, transformers class, position layout,
    frames per video the released checkpoints were trained with, and the family's own pooling."""
    from longvid.models.checkpoint.registry import ADAPTERS

    print("| model_type | transformers class | positions | trained frames | frames per step | pooling op |")
    print("|---|---|---|---:|---:|---|")
    for adapter in ADAPTERS:
        for model_type in adapter.model_types:
            print(
                f"| {model_type} | {adapter.model_classes[model_type]} | {adapter.position_layout} | "
                f"{adapter.trained_frames} | {adapter.frames_per_step} | {adapter.pooling_op} |"
            )
    print("Any checkpoint folder or hub id whose config.json has one of these model_type values loads;")
    print("`longvid inspect --model ID` shows what longvid feeds it.")


@app.command()
def serve(
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 7860,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    max_upload_mb: Annotated[float, typer.Option(help="Largest video upload, in MB.")] = 512,
    max_held_mb: Annotated[
        float | None, typer.Option(help="All uploads held at once, in MB (default: 4 x --max-upload-mb).")
    ] = None,
    allowed_local_media_path: Annotated[
        list[Path] | None,
        typer.Option(help="A folder whose videos /v1/chat/completions may name by path (repeatable)."),
    ] = None,
) -> None:
    """A web page: upload a video (or use the sample), ask, and see the answer with the frames
    the model saw, tokens per frame, memory and time."""
    from longvid.web.server import serve as run_server

    quiet_transformers()
    import math

    if not (math.isfinite(max_upload_mb) and max_upload_mb > 0):
        raise InvalidRequestError(f"--max-upload-mb must be a number > 0 (got {max_upload_mb})")
    if max_held_mb is not None and not (math.isfinite(max_held_mb) and max_held_mb >= max_upload_mb):
        raise InvalidRequestError(f"--max-held-mb must be a number >= --max-upload-mb (got {max_held_mb})")
    for folder in allowed_local_media_path or []:
        if not folder.is_dir():
            raise InvalidRequestError(f"--allowed-local-media-path {folder} is not a folder")
    run_server(model, host=host, port=port, device=device, max_upload_mb=max_upload_mb, max_held_mb=max_held_mb,
               allowed_local_media_path=allowed_local_media_path)  # fmt: skip


@app.command()
def tiny(
    family: Annotated[str, typer.Argument(help=", ".join(FAMILIES) + ".")],
    out: Annotated[Path, typer.Argument(help="Folder to write the checkpoint to.")],
    grid: Annotated[int, typer.Option(help="Patches per frame side.")] = 8,
    hidden: Annotated[int, typer.Option(help="Language model width.")] = 64,
    layers: Annotated[int, typer.Option(help="Language model layers.")] = 2,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write a tiny random checkpoint of a supported family (for trying the pipeline offline)."""
    from longvid.models.checkpoint.tiny import save

    quiet_transformers()
    path = save(family, out, grid=grid, hidden=hidden, layers=layers, seed=seed)
    print(f"wrote a tiny random {family} checkpoint to {path}")


@app.command()
def prepare(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    question: Annotated[str, typer.Argument(help="The question.")],
    model: Annotated[str, typer.Option(help="Checkpoint folder or hub id (config, tokenizer, processor files).")],
    out: Annotated[Path, typer.Option(help="Where to write the inputs (.safetensors).")],
    frames: Annotated[int | None, typer.Option(help="Frames to sample (default: the checkpoint's).")] = None,
    fps: FpsOption = None,
    min_frames: MinFramesOption = None,
    max_frames: MaxFramesOption = None,
    min_pixels: MinPixelsOption = None,
    max_pixels: MaxPixelsOption = None,
    total_pixels: TotalPixelsOption = None,
    fast_resize: Annotated[bool, typer.Option(help="Resize in the decoder (faster, not the official pixels).")] = False,
) -> None:
    """Write the inputs a checkpoint's official processor would give (input_ids,
    attention_mask, pixel_values_videos, ...) from longvid's sampling and preprocessing;
    run them with plain transformers: model.generate(**safetensors.torch.load_file(OUT))."""
    from safetensors.torch import save_file

    from longvid.models.checkpoint.prepare import prepare as prepare_inputs

    quiet_transformers()
    if out.is_dir() or out.suffix != ".safetensors":
        raise InvalidRequestError(f"--out must name a .safetensors file (got {out})")
    inputs = prepare_inputs(model, video, question, frames=frames, fps=fps, min_frames=min_frames,
                            max_frames=max_frames, min_pixels=min_pixels, max_pixels=max_pixels,
                            total_pixels=total_pixels, fast_resize=fast_resize)  # fmt: skip
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
    from longvid.models.checkpoint.describe import SAMPLE, describe

    quiet_transformers()
    report = describe(model, video=video or SAMPLE)
    if as_json:
        print(json.dumps(report, indent=1))
        return
    for key, value in report.items():
        shown = repr(value) if key == "prompt" else value
        print(f"{key:>34}  {shown}")
