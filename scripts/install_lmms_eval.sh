#!/usr/bin/env bash
# lmms-eval beside longvid, without touching torch: lmms-eval's own requirements pull
# torchvision (a CUDA build that does not load beside the CPU torch) and pin av<16, so it is
# installed with --no-deps plus what its CLI, evaluator and a generate_until task import.
# Tested with lmms-eval 0.7.3 (tests/test_lmms_eval.py; CI runs this script). filelock<4:
# lmms-eval's evaluator imports filelock._api, which filelock 4 removed.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=".venv/bin/python -m pip install -q --disable-pip-version-check"
$PIP --no-deps "lmms-eval==0.7.3"
# python-dotenv: its OpenAI-compatible model (openai_compatible), which the tests point at longvid serve
$PIP loguru pytz accelerate sacrebleu evaluate tenacity pytablewriter "filelock<4" python-dotenv
.venv/bin/python -c "import lmms_eval.evaluator, longvid.evals.lmms_plugin as p; assert hasattr(p, 'LongvidLMM')"
