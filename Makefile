# Two commands on a fresh machine: `make run` (set up + train the quickstart) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint docs docs-check bench clean

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

# ruff, then the import contracts in pyproject.toml (layers, no cycles, TensorFlow only in dlrun.engine),
# then the documentation site, built strictly (a broken link or a page left out of the navigation fails)
SITE_BUILD = $(VENV)/bin/mkdocs build --strict --quiet --site-dir site
lint: setup
	$(VENV)/bin/ruff check dlrun tests benchmarks scripts examples
	$(VENV)/bin/lint-imports
	$(SITE_BUILD)

# the site alone, from the pages as committed (no training): what CI builds
docs-check: setup
	$(SITE_BUILD)

# everything generated, then the site: the config reference (docs/reference.md) and the editor schema
# from the schema, the benchmark table from benchmarks/RESULTS.md, and the README's pictures from real
# runs (a quickstart and the lr x lambda sweep: a few minutes), then mkdocs build --strict into site/
docs: setup
	$(PY) -m dlrun.config.reference docs/reference.md
	$(PY) -m dlrun schema --out dlrun.schema.json
	$(PY) scripts/docs_performance.py docs/performance.md
	$(PY) scripts/docs_pictures.py --out docs/img
	$(SITE_BUILD)

# Real MNIST (idx) next to the checkout when present, else built-in synthetic digits; BENCH_ARGS=--quick etc.
BENCH_DATA ?= $(wildcard ../shared/data/mnist-t10k)
bench: setup
	$(PY) benchmarks/run.py $(if $(BENCH_DATA),--data $(BENCH_DATA)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
