# `make demo`: set up and run the main job; `make test`: set up and run the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is pinned here, not in pyproject: 2.13.0 is the tested release, and naming it keeps
# pip on the small CPU wheel where one is offered instead of a multi-GB CUDA download.
TORCH  ?= torch==2.13.0
SHELL  := /bin/bash

.PHONY: setup demo test lint docs system-deps clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,onnx,images,postgres,dashboard,timm]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/mogaqnn search --model lenet5 --dataset mnist5k --population 16 --generations 8 \
		--out runs/demo --seed 0

# Debian packages the tests read: the real Fashion-MNIST files, a PostgreSQL server and a
# headless browser for the report.
system-deps:
	@missing=""; \
	[ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
		echo "installing Debian packages:$$missing"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# One pytest-xdist worker per core (at most 4), one torch thread each; a search that several
# tests read runs once per worker. A plain `pytest` runs in one process.
test: setup system-deps
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n auto --maxprocesses 4

lint: setup
	$(BIN)/ruff check mogaqnn tests benchmarks
	$(BIN)/ruff format --check mogaqnn tests benchmarks

# docs/configuration.md is generated from SearchConfig and its help strings (mogaqnn/config.py).
docs: setup
	$(BIN)/python -c 'from mogaqnn.config import reference_markdown as r; print(r(), end="")' \
		> docs/configuration.md

clean:
	rm -rf $(VENV) runs .pytest_cache
