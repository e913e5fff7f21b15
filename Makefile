# make run   — install (if needed) and run the pipeline on configs/quickstart.yaml
# make test  — install (if needed) and run lint + the test suite (unit tests and notebooks)
# make lab   — install (if needed) and open JupyterLab on notebooks/
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/quickstart.yaml
RUNS ?= runs
# `make run` is the demo job: it retrains runs/quickstart each time (RUN_FLAGS=--resume continues an
# interrupted training, or evaluates a finished run again without retraining it)
RUN_FLAGS ?= --overwrite

.PHONY: install run test lint lab

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python -m wavenet_lib.pipeline $(CONFIG) --runs-dir $(RUNS) $(RUN_FLAGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest --nbmake tests notebooks

lab: install
	$(BIN)/jupyter lab notebooks/
