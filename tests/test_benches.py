"""The benchmark scripts that must run where no one here can run them (bench/gpu.py needs a
CUDA device) are checked at tiny size on CPU: they run, report every row, and their
correctness check holds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_bench_runs_tiny_on_cpu_and_longvid_equals_transformers(hub_dirs, tmp_path):
    gpu = bench_module("gpu")
    table = tmp_path / "gpu.md"
    rows = gpu.main(["--model-dir", str(hub_dirs["llava_onevision"]), "--tiny", "--device", "cpu",
                     "--dtype", "float32", "--frames", "4,8", "--markdown", str(table)])  # fmt: skip
    assert [(r["frames"], r["config"]) for r in rows] == [
        (f, c) for f in (4, 8) for c in ("transformers", "longvid_uniform_16bit", "longvid_progressive_4bit")
    ]
    by = {(r["frames"], r["config"]): r for r in rows}
    for f in (4, 8):
        plain, uniform, progressive = (
            by[f, c] for c in ("transformers", "longvid_uniform_16bit", "longvid_progressive_4bit")
        )
        assert uniform["tokens"] == plain["tokens"] > progressive["tokens"]
        # the same tokens at the same positions: longvid's chunked block-cache prefill gives
        # transformers' logits (8 frames: two 1,024-token chunks)
        assert uniform["max_logit_diff"] < 1e-4
    # LLaVA-OneVision-0.5B's geometry: 196 tokens a frame, the newline, the prompt
    assert by[8, "transformers"]["tokens"] - by[4, "transformers"]["tokens"] == 4 * 196
    assert table.read_text().count("\n") == 2 + len(rows)
