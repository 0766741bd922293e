"""One line that says what an encoder training run did (printed at its end, also when a
finished run is run again and there is nothing left to do)."""

from __future__ import annotations

import json
from pathlib import Path


def summary_line(cfg, record: dict) -> str:
    """Stage, steps, first and last loss from the run's history, and the evaluation if any."""
    history = Path(cfg.out) / "history.jsonl"
    lines = [json.loads(x) for x in history.read_text().splitlines() if x.strip()] if history.exists() else []
    losses = [x["loss"] for x in lines if "loss" in x]
    said = f"{cfg.stage} stage: {record.get('step', 0)}/{cfg.steps} steps"
    if losses:
        said += f", loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    ev = record.get("eval")
    if ev:
        said += f"; held-out t2v R@1 {ev['t2v_r@1']:.3f}, order accuracy {ev['order_acc']:.3f}"
    return said + f"; checkpoint {Path(cfg.out) / 'checkpoint.pt'}"
