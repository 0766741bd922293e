"""`longvid encoder`: the video-first encoder recipe (data, training, evaluation, captioning)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from longvid.cli.common import app, parse_overrides, quiet_transformers
from longvid.encoder.summary import summary_line
from longvid.errors import InvalidRequestError

encoder_app = typer.Typer(
    help="Video-first encoder recipe: synthetic data, contrastive training, evaluation, captioning.",
    no_args_is_help=True,
)
app.add_typer(encoder_app, name="encoder")


@encoder_app.command("train")
def encoder_train(
    config: Annotated[Path, typer.Argument(help="TOML or YAML training config.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: key=value.")] = None,
) -> None:
    """Contrastive video-text training (resumes from OUT/checkpoint.pt; runs under torchrun)."""
    from longvid.encoder.train import load_config, train

    quiet_transformers()
    cfg = load_config(config, parse_overrides(set_))
    record = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, from rank 0
        print(summary_line(cfg, record))
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
    from longvid.encoder.dual import load_encoder
    from longvid.encoder.evaluate import evaluate_manifest, format_report
    from longvid.encoder.long import LONG_MODES

    quiet_transformers()
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

    quiet_transformers()
    cfg = CaptionerConfig(latents=latents, every=every)
    losses = train_captioner(encoder, lm, manifest, out, steps=steps, batch=batch, lr=lr, frames=frames,
                             config=cfg, seed=seed, threads=threads)  # fmt: skip
    print(f"wrote {out}: loss {losses[0]:.3f} -> {losses[-1]:.3f}")


@encoder_app.command("caption-lm")
def encoder_caption_lm(
    manifest: Annotated[Path, typer.Option(help="JSONL manifest whose captions the LM learns.")],
    out: Annotated[Path, typer.Option(help="Folder for the LM and its tokenizer.")] = Path("runs/lm"),
    steps: Annotated[int, typer.Option()] = 300,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 1,
) -> None:
    """A small causal LM of the captions' language (2-layer Qwen2, word-level tokenizer),
    trained on the captions as text: a frozen LM for caption-train when no pretrained one is at hand."""
    import torch

    from longvid.cli.common import interactive
    from longvid.encoder.caption_lm import pretrain_caption_lm
    from longvid.encoder.data import read_manifest

    quiet_transformers()
    torch.set_num_threads(threads)
    clips, _ = read_manifest(manifest)
    loss = pretrain_caption_lm([c.caption for c in clips], out, steps=steps, seed=seed, progress=interactive())
    print(f"wrote {out}: a caption LM, last loss {loss:.3f}")


@encoder_app.command("caption")
def encoder_caption(
    model: Annotated[Path, typer.Option(help="Captioner folder (from caption-train).")],
    videos: Annotated[list[Path] | None, typer.Argument(help="Video files (or --manifest).")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Score against a manifest's captions (ROUGE-L).")] = None,
    max_new_tokens: Annotated[int, typer.Option()] = 32,
) -> None:
    """Caption videos; with --manifest, caption its clips and report ROUGE-L."""
    from longvid.encoder.captioner import caption_clips, load_captioner, rouge_l
    from longvid.encoder.data import Clip, read_manifest

    quiet_transformers()
    captioner, meta = load_captioner(model)
    clips = [Clip(v, "") for v in videos or []]
    if manifest is not None:
        clips += read_manifest(manifest)[0]
    if not clips:
        raise InvalidRequestError("give video files or --manifest")
    predictions = caption_clips(captioner, clips, meta["frames"], max_new_tokens)
    for clip, text in zip(clips, predictions, strict=True):
        print(f"{clip.video}\t{text}")
    scored = [(p, c.caption) for p, c in zip(predictions, clips, strict=True) if c.caption]
    if scored:
        predicted, references = (list(x) for x in zip(*scored, strict=True))
        print(f"ROUGE-L {rouge_l(predicted, references):.3f} over {len(scored)} captioned clips")
