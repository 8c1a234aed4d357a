# The README's two commands: `make demo` (set up, make demo data, train on it) and
# `make test` (set up, run every check). .ci/run calls `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test gpu-check
setup: $(VENV)/.installed

# Where a GPU driver is present: the `gpu` extra (torch, DALI, CuPy and NVRTC, all CUDA 13,
# from PyPI). Otherwise the plain 2.13.0 torch release (a local CPU build on our development
# machines, PyPI's default elsewhere), then the package with its test extra.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install --quiet -e ".[gpu,test]"; \
	else $(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0; \
	  $(BIN)/pip install --quiet -e ".[test]"; fi
	touch $@

# The main job: train a small SlowOnly on the demo data without and with VideoMix, 3 seeds
# each with the same budget; print top-1 mean ± std on the biased and the debiased test split
# and the verdict on the per-seed differences (runs/compare-demo/compare.json).
demo: setup
	$(BIN)/python -m train --recipe demo --compare none,spatial --seeds 3

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

# The one prepared device call (docs/gpu-check.md): every `gpu` test, GPU bench rows with NVDEC
# utilisation, a short GPU training run, CPU-vs-GPU equality, NVDEC's limits; a JSON after every
# step and a log under $OUT (else ./gpu-check/). Exits 0 only if everything passed. It never
# installs anything: $(PYTHON) (default python3) runs as it is, this checkout on PYTHONPATH
# (on a machine with the venv: PYTHON=.venv/bin/python). `make gpu-check DRY=1` walks the same
# script without CUDA (part of `make test`).
PYTHON ?= python3
gpu-check:
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" PYTHONUNBUFFERED=1 \
	  $(PYTHON) tests/gpu_check.py $(if $(DRY),--dry-run)
