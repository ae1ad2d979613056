# Two commands: `make repro` (set up, then run the pipeline) and `make test` (set up, lint, then the test suite).
# The set-up is idempotent: the venv is reinstalled only when requirements.txt or pyproject.toml change.
# requirements.txt is a universal lock (exact pins with platform markers) compiled from requirements.in.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: make it the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)
# CPU-only machines: `make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu` installs PyTorch's CPU build of the
# same torch/torchvision versions and skips the CUDA libraries (about 3 GB).
TORCH_INDEX ?=
CUDA_LIBS := ^(nvidia-|cuda-|triton)

.PHONY: setup repro test test-quick lint bench lock clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23"
ifeq ($(TORCH_INDEX),)
	$(BIN)/python -m pip install --quiet -r requirements.txt
else
	$(BIN)/python -m pip install --quiet --index-url $(TORCH_INDEX) \
		"torch==$$(sed -n 's/^torch==\([^ ;]*\).*/\1/p' requirements.txt)" \
		"torchvision==$$(sed -n 's/^torchvision==\([^ ;]*\).*/\1/p' requirements.txt)"
	grep -vE '$(CUDA_LIBS)' requirements.txt > $(VENV)/requirements-cpu.txt
	$(BIN)/python -m pip install --quiet --no-deps -r $(VENV)/requirements-cpu.txt
endif
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

lint: $(STAMP)
	$(BIN)/ruff check src stages tests benchmarks

# Two pytest workers (pytest-xdist), a test file each at a time: the files' module fixtures are built once, and the
# DVC-process tests overlap with the training tests (about 7 minutes on 2 cores, against 10 in one process).
PYTEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

# The fast subset (no training runs, no pipeline runs): under a minute on 2 cores.
test-quick: lint
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/eval_speed.py

# Re-pin every platform after editing requirements.in (needs uv: pip install uv).
lock:
	uv pip compile --universal --python-version 3.11 --no-header requirements.in -o requirements.txt

clean-venv:
	rm -rf $(VENV)
