# Two commands for a newcomer: `make demo` (set up, run the main job) and `make test`.
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint bench-sampling sample

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# The main job on the bundled sample video: a contact sheet of 16 exactly-sampled frames.
demo: setup
	$(BIN)/longvid info src/longvid/data/sample.mp4
	$(BIN)/longvid frames src/longvid/data/sample.mp4 -n 16 --sheet out/sample_sheet.png

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# Regenerates the bundled sample (deterministic from its seed).
sample: setup
	$(BIN)/python -m longvid.testbed.sample src/longvid/data/sample.mp4

bench-sampling: setup
	$(BIN)/python -m pip install -q decord
	$(BIN)/python bench/sampling.py --markdown docs/sampling_table.md
