"""Hub ids as users type them: dotted names (``Qwen/Qwen2.5-VL-3B-Instruct``), ``@revision``,
read offline from a Hugging Face cache built here, through the CLI (inspect, prepare, ask,
eval), ``longvid.load``, ``longvid.prepare`` and the lmms-eval plugin. Each command runs in its
own process: the cache location is read when huggingface_hub is imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

QWEN25 = "Qwen/Qwen2.5-VL-3B-Instruct"
TINY = "longvid-test/Tiny.5-Video"  # a dotted name for a tiny checkpoint with weights
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put_in_cache(cache: Path, repo: str, folder: Path, branch: str = "main") -> None:
    """The layout huggingface_hub reads offline: refs/BRANCH -> a commit, snapshots/COMMIT/*."""
    root = cache / ("models--" + repo.replace("/", "--"))
    shutil.copytree(folder, root / "snapshots" / COMMIT)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / branch).write_text(COMMIT)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory, hub_dirs, tiny_checkpoints) -> Path:
    cache = tmp_path_factory.mktemp("hf") / "hub"
    put_in_cache(cache, QWEN25, hub_dirs["qwen2_5_vl"])
    put_in_cache(cache, TINY, tiny_checkpoints["llava_onevision"])
    return cache


def longvid(cache: Path, *args, code: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "longvid", *map(str, args)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def test_dotted_hub_ids_work_offline_from_the_cache_in_the_cli(hf_cache, tmp_path):
    from longvid.bundled import SAMPLE_VIDEO

    got = longvid(hf_cache, "inspect", "--model", QWEN25, "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["family"] == "qwen2_5_vl"
    got = longvid(hf_cache, "prepare", SAMPLE_VIDEO, "what ?", "--model", f"{QWEN25}@main", "--frames", "4",
                  "--out", tmp_path / "in.safetensors")  # fmt: skip
    assert got.returncode == 0 and (tmp_path / "in.safetensors").exists(), got.stderr
    got = longvid(hf_cache, "ask", SAMPLE_VIDEO, "what colour ?", "--model", TINY, "--frames", "4",
                  "--max-new-tokens", "2", "--json")  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["family"] == "llava_onevision"


def test_a_hub_id_in_no_cache_is_one_line(hf_cache):
    got = longvid(hf_cache, "inspect", "--model", "Qwen/Qwen9.5-VL-1B")
    assert got.returncode == 2 and "Traceback" not in got.stderr
    assert "no hub repo Qwen/Qwen9.5-VL-1B in the Hugging Face cache (offline" in got.stderr
    got = longvid(hf_cache, "inspect", "--model", f"{QWEN25}@v9")  # a revision the cache lacks
    assert got.returncode == 2 and f"no hub repo {QWEN25}@v9" in got.stderr
    got = longvid(hf_cache, "inspect", "--model", "./no/such/folder")
    assert got.returncode == 2 and "no such model folder" in got.stderr


def test_dotted_hub_ids_in_eval_load_prepare_and_lmms_eval(hf_cache, tmp_path):
    from longvid.evals.fixtures import write_fixture

    data = write_fixture("mlvu", tmp_path / "mlvu", n=2, frames=8)
    got = longvid(hf_cache, "eval", "--bench", "mlvu", "--data", data, "--model", TINY, "--frames", "4",
                  "--out", tmp_path / "r.jsonl")  # fmt: skip
    assert got.returncode == 0, got.stderr
    code = f"""
import longvid
from longvid.bundled import SAMPLE_VIDEO
from longvid.evals.lmms_plugin import LongvidRequests
llm = longvid.load({TINY!r}, revision="main")
inputs = longvid.prepare({QWEN25!r}, SAMPLE_VIDEO, "what ?", frames=4)
plugin = LongvidRequests(pretrained={TINY + "@main"!r}, frames="4")
print(llm.family, plugin.llm.family, sorted(inputs)[0])
"""
    got = longvid(hf_cache, code=code)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["llava_onevision", "llava_onevision", "attention_mask"]
