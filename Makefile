# Two commands on a fresh machine: `make run` (set up + train the quickstart) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint docs bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: setup
	$(VENV)/bin/dlrun train configs/quickstart.yaml

# both cores: most of the suite's time is CLI subprocesses starting up and training tiny models
test: setup
	$(PY) -m pytest -q -n 2

# ruff, then the import contracts in pyproject.toml (layers, no cycles, TensorFlow only in dlrun.engine)
lint: setup
	$(VENV)/bin/ruff check dlrun tests benchmarks
	$(VENV)/bin/lint-imports

# the README's config reference and the editor schema dlrun.schema.json, both generated from the schema
docs: setup
	$(PY) -m dlrun.config.reference README.md
	$(PY) -m dlrun schema --out dlrun.schema.json

# Real MNIST (idx) next to the checkout when present, else built-in synthetic digits; BENCH_ARGS=--quick etc.
BENCH_DATA ?= $(wildcard ../shared/data/mnist-t10k)
bench: setup
	$(PY) benchmarks/run.py $(if $(BENCH_DATA),--data $(BENCH_DATA)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
