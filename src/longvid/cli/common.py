"""What every command module shares: the app, argument parsers, and the quiet settings."""

from __future__ import annotations

import sys
import tomllib

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


FPS_HELP = "Sample by frame rate, qwen-vl-utils' way (instead of --frames; default 2 when a budget is given)."
MIN_FRAMES_HELP = "With --fps: fewest frames (default 4)."
MAX_FRAMES_HELP = "With --fps: most frames (default 768)."
MIN_PIXELS_HELP = "Qwen: fewest pixels a frame (default 128x28x28)."
MAX_PIXELS_HELP = "Qwen: most pixels a frame (default 768x28x28, lowered by --total-pixels)."
TOTAL_PIXELS_HELP = "Qwen: pixels over all frames (default 128000x28x28x0.9)."


def default(name: str) -> str:
    """'(default: X)' for a help text, from ``AskOptions`` (the one place defaults live)."""
    from longvid.models.inference.request import AskOptions

    return f"(default: {getattr(AskOptions(), name)})"


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
