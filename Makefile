# Two entry points (see README): `make run` (the main job) and `make test` (lint, then the test
# suite and a small main job against the wheel installed in a fresh venv outside the checkout:
# tools/test_installed.sh). For quick runs on the checkout itself: .venv/bin/python -m pytest.
# The 5000-image MNIST subset needs the optional extra: .venv/bin/pip install -e ".[mnist]".
# `make data` installs the real Fashion-MNIST (Debian package dataset-fashion-mnist, found by
# `--dataset fashion` in /usr/share/datasets/fashion-mnist).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,dask]"
	touch $(STAMP)

.PHONY: install run test lint bench data
install: $(STAMP)

run: $(STAMP)
	$(BIN)/analogsim compare

test: $(STAMP)
	$(BIN)/ruff check analogsim tests benchmarks
	PY=$(PY) BUILD_PY=$(BIN)/python tools/test_installed.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_crossbar.py

# Needs root and apt-get (Debian/Ubuntu); elsewhere it says so and leaves the system alone
# (then point ANALOGSIM_DATA_DIR or --data-dir at the four IDX files, see docs).
DATA_PKG := dataset-fashion-mnist
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
		echo "make data: Fashion-MNIST is already in /usr/share/datasets/fashion-mnist"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "make data: apt-get not found; skipped. Get the Fashion-MNIST IDX files and set ANALOGSIM_DATA_DIR or pass --data-dir"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "make data: not root; skipped. Run: sudo apt-get update && sudo apt-get install -y $(DATA_PKG)"; \
	else \
		apt-get update && apt-get install -y $(DATA_PKG); \
	fi
