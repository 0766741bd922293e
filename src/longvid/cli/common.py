"""What every command module shares: the app, argument parsers, and the quiet settings."""

from __future__ import annotations

import sys
import tomllib
from typing import Annotated

import typer

from longvid.errors import InvalidRequestError
from longvid.extend.modes import (
    ANCHOR_MODES,
    EXTEND_MODES,
    KV_BITS,
    POOLING_MODES,
    REARRANGE_MODES,
    REDUCE_MODES,
    choices,
)

app = typer.Typer(
    name="longvid",
    help="Long-video understanding for video LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"longvid {version('longvid')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print longvid's version.", callback=_version, is_eager=True),
) -> None:
    """Long-video understanding for video LLMs."""


# choice lists for help texts, from the library's own constants
EXTEND_HELP = choices(EXTEND_MODES)
POOLING_HELP = choices(POOLING_MODES)
ANCHORS_HELP = choices(ANCHOR_MODES)
REARRANGE_HELP = choices(REARRANGE_MODES)
KV_BITS_HELP = choices(KV_BITS)
REDUCE_HELP = choices(REDUCE_MODES)
KEEP_HELP = "With --reduce: the fraction of the family's own visual tokens kept."


def default(name: str) -> str:
    """'(default: X)' for a help text, from ``AskOptions`` (the one place defaults live)."""
    from longvid.models.inference.request import AskOptions

    return f"(default: {getattr(AskOptions(), name)})"


# The request options several commands take (ask, prepare, eval, profile), declared once: each
# defaults to None (not given), and AskOptions supplies the default and the check.
FpsOption = Annotated[
    float | None, typer.Option(help="Sample by frame rate, qwen-vl-utils' way (instead of --frames).")
]
MinFramesOption = Annotated[int | None, typer.Option(help="With --fps: fewest frames (default 4).")]
MaxFramesOption = Annotated[int | None, typer.Option(help="With --fps: most frames (default 768).")]
MinPixelsOption = Annotated[int | None, typer.Option(help="Qwen: fewest pixels a frame (default 128 tokens' worth).")]
MaxPixelsOption = Annotated[
    int | None, typer.Option(help="Qwen: most pixels a frame (default 768 tokens' worth, lowered by --total-pixels).")
]
TotalPixelsOption = Annotated[
    int | None, typer.Option(help="Qwen: pixels over all frames (default 115,200 tokens' worth).")
]
ExtendOption = Annotated[str | None, typer.Option(help=f"Context extension: {EXTEND_HELP} {default('extend')}.")]
PoolingOption = Annotated[
    str | None, typer.Option(help=f"{POOLING_HELP} (uniform: the family's own) {default('pooling')}.")
]
ReduceOption = Annotated[
    str | None, typer.Option(help=f"Content-aware token reduction: {REDUCE_HELP} {default('reduce')}.")
]
KeepOption = Annotated[float | None, typer.Option(help=f"{KEEP_HELP} {default('keep')}")]
KvBitsOption = Annotated[
    int | None, typer.Option(help=f"KV cache precision in bits: {KV_BITS_HELP} {default('kv_bits')}.")
]
KvBudgetOption = Annotated[
    str | None,
    typer.Option(
        help="Most the KV cache holds of the video: visual tokens per layer (4096) or a size (512MiB, 2GiB); "
        "what repeats in time is dropped while the video streams in (default: no bound)."
    ),
]
VisualWindowOption = Annotated[int | None, typer.Option(help="W_v in tokens (default: the family's).")]


def interactive() -> bool:
    """Progress bars only when a person watches stderr."""
    return sys.stderr.isatty()


def parse_size(text: str | None) -> int | tuple[int, int] | None:
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


def parse_list(text: str | None, kind: type) -> list | None:
    if text is None:
        return None
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidRequestError(f"expected a comma-separated list of {kind.__name__}s, got {text!r}") from None


def parse_depths(text: str | None) -> list[float] | None:
    """'0:1:0.25' (start:stop:step, stop included) or '0,0.5,1'."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = round((stop - start) / step) + 1
            values = [round(start + i * step, 6) for i in range(count)]
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidRequestError(
            f"--depths must be start:stop:step with start <= stop and step > 0, or a list like 0,0.5,1 (got {text!r})"
        ) from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise InvalidRequestError("--depths must lie in [0, 1]")
    return values


def parse_overrides(pairs: list[str] | None) -> dict:
    """``key=value`` pairs; values read as TOML (numbers, booleans, quoted strings), else text."""
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


def quiet_transformers() -> None:
    """transformers' own progress bars and warnings would bury the answer."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def print_table(rows: list[tuple[str, str]]) -> None:
    """Two columns, bold keys, through rich."""
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for k, v in rows:
        table.add_row(f"[bold]{k}[/bold]", v)
    Console().print(table)
