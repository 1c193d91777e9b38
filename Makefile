# Every target that needs the environment depends on $(STAMP), so `make test`
# on a fresh machine with only Python 3.10+ and make installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install install-slurm install-ray install-postgres lock test bench bench-report clean sweep report ui study sync server

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install exactly requirements.lock (no-op when up to date)

# Versions change only through `make lock`. The lock's first line records the hash of
# pyproject.toml's [project] tables, so dependencies edited without `make lock` stop here.
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
LOCK := requirements.lock
EXTRA_LOCKS := requirements-slurm.lock requirements-ray.lock requirements-postgres.lock
LOCK_HASH = $(shell $(PYTHON) tools/pyproject_hash.py)

# --compile-bytecode: the packages' .pyc are written once here; otherwise every command compiles
# matplotlib, pandas and mlflow from source when the environment sets PYTHONDONTWRITEBYTECODE
# (measured: 23 s of a 125 s profiled `make report` on a loaded machine).
$(STAMP): pyproject.toml $(LOCK)
	@grep -qx '# pyproject-hash: $(LOCK_HASH)' $(LOCK) || \
		{ echo "error: pyproject.toml's dependencies changed since $(LOCK) was written: run make lock" >&2; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@# ...and the project's own modules (0.12 s to compile, paid by every command otherwise)
	$(PY) -m compileall -q nncore experiments analysis hydra_plugins benchmarks
	@touch $(STAMP)

install-slurm install-ray install-postgres: install-%: $(STAMP)  ## install-slurm | -ray | -postgres: the extra's lock instead of the main one
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements-$*.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .

# Without UPGRADE=1, uv keeps every pin already in the lock and resolves only what pyproject.toml
# added or changed, so adding one dependency does not move the others; UPGRADE=1 re-resolves all.
UPGRADE ?= 0
lock:  ## resolve dependencies into requirements*.lock, keeping existing pins (UPGRADE=1: newest of all)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@cp $(LOCK) $(LOCK).tmp
	$(UV) pip compile --quiet --universal --python-version 3.10 --no-header $(if $(filter 1,$(UPGRADE)),--upgrade) \
		pyproject.toml --extra test -o $(LOCK).tmp
	@{ echo '# pyproject-hash: $(LOCK_HASH)'; \
	   echo '# make lock: uv pip compile --universal --python-version 3.10 pyproject.toml --extra test'; \
	   cat $(LOCK).tmp; } > $(LOCK) && rm $(LOCK).tmp
	@# Each extra's lock starts from the main lock's pins (uv keeps an output file's pins where it can);
	@# the ray extra cannot keep joblib's (hydra-ray-launcher needs cloudpickle<3).
	@for extra in slurm ray postgres; do \
		grep -v '^#' $(LOCK) > requirements-$$extra.lock.tmp && \
		$(UV) pip compile --quiet --universal --python-version 3.10 --no-header \
			pyproject.toml --extra test --extra $$extra -o requirements-$$extra.lock.tmp && \
		{ echo "# make lock: requirements.lock plus the $$extra extra; install with make install-$$extra"; \
		  cat requirements-$$extra.lock.tmp; } > requirements-$$extra.lock && rm requirements-$$extra.lock.tmp \
		|| exit 1; \
	done
	@echo "lock: $$(grep -c '==' $(LOCK)) pinned lines in $(LOCK); make install to apply"

test: $(STAMP)  ## run the test suite
	$(PY) -m pytest -q -n auto --dist loadfile

bench: $(STAMP)  ## step and probe time at the study's shapes vs a plain NumPy MLP (and PyTorch if installed); the recurrent step vs torch; a single run's start-up
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(nproc)} $(PY) -m benchmarks.bench_step
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(nproc)} $(PY) -m benchmarks.bench_recurrent
	$(PY) -m benchmarks.bench_startup

bench-report: $(STAMP)  ## time the report on a synthetic 1,000-run sweep (target <= 60 s)
	$(PY) -m benchmarks.bench_report

# MLflow's usage telemetry stays off (also for `mlflow ui` and `mlflow server`) unless the
# environment sets MLFLOW_DISABLE_TELEMETRY=false; experiments/tracking.py says why.
export MLFLOW_DISABLE_TELEMETRY ?= true

# One BLAS thread per worker process: N workers on N cores.
PIN := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
FORCE ?= 0

sweep: $(STAMP)  ## run the default study (120 runs on all cores), then build the report; FORCE=1 reruns all
	$(PIN) FORCE=$(FORCE) $(PY) experiments/train.py -m experiment=study
	@$(MAKE) --no-print-directory report

report: $(STAMP)  ## build reports/report.md, summary.csv and figures from the latest sweep
	$(PY) -m analysis.report

study: $(STAMP)  ## run a named experiment: make study NAME=he2015 (see conf/experiment/)
	@test -n "$(NAME)" || (echo "error: give NAME=<one of: $$(ls conf/experiment | sed 's/.yaml//' | tr '\n' ' ')>" >&2; exit 2)
	$(PIN) FORCE=$(FORCE) $(PY) experiments/train.py -m experiment=$(NAME)
	$(PY) -m analysis.report --study $(NAME)

ui: $(STAMP)  ## serve the MLflow UI for the default store on http://127.0.0.1:5000; prints the runs table's URL
	@$(PY) -m experiments.ui --tracking-uri sqlite:///$(CURDIR)/mlflow.db --port 5000
	$(PY) -m mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

PORT ?= 5001
server: $(STAMP)  ## serve the default store (mlflow.db, mlartifacts/) as a tracking server on http://127.0.0.1:5001 (PORT=...)
	$(PY) -m mlflow server --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--artifacts-destination $(CURDIR)/mlartifacts --host 127.0.0.1 --port $(PORT)

sync: $(STAMP)  ## upload run records that a store outage left unsynced (idempotent)
	$(PY) -m experiments.sync

clean:  ## remove the environment, caches and generated outputs
	rm -rf $(VENV) .pytest_cache build *.egg-info outputs multirun
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
