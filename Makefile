# Two entry points on a fresh machine: `make studio` and `make test` (each installs what it needs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: install studio test bench lint typecheck format

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned resolve pulls a multi-GB CUDA build (torch==2.13.0 is the CPU build the project is tested with)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,tensorboard,mlflow,wandb,trackio]'
	touch $(STAMP)

install: $(STAMP)

studio: $(STAMP)
	$(VENV)/bin/adrpo serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	bash scripts/ensure_system.sh
	$(PY) -m pytest

bench: $(STAMP)
	for script in bench/*.py; do $(PY) $$script || exit 1; done

# Lint (ruff: pycodestyle, pyflakes, import order, pyupgrade, bugbear), format check, and pyright's basic
# mode on the engine and the worker; settings in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/pyright --pythonpath $(PY)

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
