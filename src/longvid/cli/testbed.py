"""`longvid testbed`: train the bundled testbed model, or print its card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from longvid.cli.common import app, quiet_transformers

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
    from longvid.testbed.card import card_accuracy
    from longvid.testbed.train import train_recipe

    quiet_transformers()
    card = train_recipe(out, seed=seed, threads=threads, stage1=stage1)
    print(f"wrote {out}: " + card_accuracy(card))


@testbed_app.command("card")
def testbed_card(
    model: Annotated[Path | None, typer.Option(help="Checkpoint folder (default: the bundled testbed).")] = None,
) -> None:
    """Print the testbed's config, training data, training length and accuracy."""
    from longvid.testbed.card import describe_card, read_card

    print("\n".join(describe_card(read_card(model))))
