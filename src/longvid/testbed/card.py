"""The testbed's card (card.json beside its weights): read it and say what it holds."""

from __future__ import annotations

import json
from pathlib import Path

from longvid.bundled import default_model_path
from longvid.errors import InvalidRequestError


def read_card(folder: str | Path | None = None) -> dict:
    """The card of a testbed checkpoint folder (default: the bundled testbed)."""
    folder = Path(folder) if folder is not None else default_model_path()
    path = folder / "card.json"
    if not path.exists():
        raise InvalidRequestError(f"{folder}: no card.json (not a longvid testbed checkpoint)")
    return json.loads(path.read_text())


def card_accuracy(card: dict) -> str:
    """'needle 100% (99-100, n=400), ...' from a recipe's card; a single stage's card (e.g.
    ``<out>.stage1``): its last in-training evaluation."""
    if "accuracy" in card:
        return ", ".join(
            f"{task} {100 * a['accuracy']:.0f}% ({100 * a['low']:.0f}-{100 * a['high']:.0f}, n={a['n']})"
            for task, a in card["accuracy"].items()
        )
    last = card["history"][-1]
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in last.items() if "/" in k)


def describe_card(card: dict) -> list[str]:
    """The card as lines: what, size, data, training length, accuracy, each stage's config."""
    stages = card.get("stages", [card])
    steps = " + ".join(str(st["history"][-1]["step"]) for st in stages)
    lines = [
        card["what"],
        f"parameters: {card['parameters']:,}; visual window {card['visual_window']} tokens; "
        f"language window {card['language_window']}",
        f"training data: {card['training_data']}",
        f"training: {steps} steps, {card['train_minutes']} min; reproduce with: {card['command']}",
        "held-out accuracy at the training length: " + card_accuracy(card),
    ]
    lines += [
        f"stage {i} config: " + ", ".join(f"{k}={v}" for k, v in st["train_config"].items())
        for i, st in enumerate(stages, 1)
    ]
    return lines
