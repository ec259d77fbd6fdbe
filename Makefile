# Two commands on a fresh machine: `make run` (set up + train the quickstart) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: setup
	$(VENV)/bin/dlrun train configs/quickstart.yaml

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check dlrun tests benchmarks

# Real MNIST (idx) next to the checkout when present, else built-in synthetic digits; BENCH_ARGS=--quick etc.
BENCH_DATA ?= $(wildcard ../shared/data/mnist-t10k)
bench: setup
	$(PY) benchmarks/run.py $(if $(BENCH_DATA),--data $(BENCH_DATA)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
