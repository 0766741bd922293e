#!/usr/bin/env bash
# Set up longvid in ./.venv: torch pinned first (the CPU build on this machine's disk; a
# looser spec lets pip pull a multi-GB CUDA build), then longvid with its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
echo "longvid set up in .venv ($(.venv/bin/python -c 'import torch, av; print("torch", torch.__version__, "| av", av.__version__)'))"
