# Two commands for a newcomer: `make demo` (set up, run the main job) and `make test`.
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint bench-sampling bench-memory bench-kv results sample

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# The main job: the bundled testbed model answers a question about the bundled sample video,
# at the frame count it was trained with and at 16x as many frames, with and without longvid.
demo: setup
	$(BIN)/longvid ask src/longvid/data/sample.mp4 "what colour is the shape with the marker ?" --compare

# two workers (one torch thread each, tests/conftest.py): 73 s instead of 107 s on 2 cores
test: setup
	$(BIN)/python -m pytest -n 2

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# Regenerates the bundled sample (deterministic from its seed).
sample: setup
	$(BIN)/python -m longvid.testbed.sample src/longvid/data/sample.mp4

results: setup
	bash scripts/results.sh

bench-memory: setup
	$(BIN)/python bench/memory.py --markdown docs/memory_table.md

bench-kv: setup
	$(BIN)/python bench/kv_drift.py --frames 64,256 --items 32 --markdown docs/kv_drift_table.md

bench-sampling: setup
	$(BIN)/python -m pip install -q decord
	$(BIN)/python bench/sampling.py --markdown docs/sampling_table.md
