# Two entry points (see README): `make run` (the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,dask,mnist]"
	touch $(STAMP)

.PHONY: install run test lint bench
install: $(STAMP)

run: $(STAMP)
	$(BIN)/analogsim compare

test: $(STAMP)
	$(BIN)/ruff check analogsim tests benchmarks
	$(BIN)/python -m pytest -W error

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_crossbar.py
