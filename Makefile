# The README's two commands: `make demo` (set up, make demo data, train on it) and
# `make test` (set up, run every check). .ci/run calls `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test
setup: $(VENV)/.installed

# torch first: the CUDA build from PyPI where a GPU driver is present, otherwise the plain
# 2.13.0 release (a local CPU build on our development machines, PyPI's default elsewhere).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  if command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install --quiet torch; \
	  else $(BIN)/pip install --quiet torch==2.13.0; fi
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# The main job: train a small SlowOnly on the demo data without and with VideoMix, same
# seed and budget, and print top-1 on the biased and the debiased test split side by side.
demo: setup
	$(BIN)/python -m train --recipe demo --compare none,spatial

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q
