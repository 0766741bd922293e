"""The longvid_probe task's functions (lmms-eval imports this file by path)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "src" / "longvid" / "data" / "sample.mp4"


def doc_to_visual(doc: dict) -> list[str]:
    """The bundled sample, or a probe video the test wrote to LONGVID_LMMS_VIDEOS."""
    if doc["video"] == "sample.mp4":
        return [str(SAMPLE)]
    return [str(Path(os.environ["LONGVID_LMMS_VIDEOS"]) / doc["video"])]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return doc["question"]


def process_results(doc: dict, results: list[str]) -> dict:
    return {"exact_match": float(results[0].strip().lower() == doc["answer"])}
