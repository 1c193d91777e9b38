# Every target that needs the environment depends on $(STAMP), so `make test`
# on a fresh machine with only Python 3.10+ and make installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test bench clean

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install the project (no-op when up to date)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

test: $(STAMP)  ## run the test suite
	$(PY) -m pytest -q

bench: $(STAMP)  ## time training steps and probes (adds a PyTorch comparison if torch is installed)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(nproc)} $(PY) -m benchmarks.bench_step

clean:  ## remove the environment, caches and generated outputs
	rm -rf $(VENV) .pytest_cache build *.egg-info outputs multirun
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
