# `make run` serves heroapi; `make test` runs the whole suite, `make test-fast` the developer's
# loop (SQLite only, no test that starts processes). They set up what they need:
# uv in .tools/ (from PyPI, with this machine's python3) and the locked dependencies in .venv/:
# `make run` only what serving needs, `make test` and `make lint` the test tools too.
PYTHON ?= python3
# Where `make run` listens: `make run PORT=9210 HOST=0.0.0.0` (set on the command line; a PORT or
# HOST in the environment, which some shells and platforms export for their own use, is ignored).
HOST := 127.0.0.1
PORT := 8000
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
BENCH := ../shared/bench
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test test-fast lint check bench bench-sqlite bench-postgresql clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Everything, test tools included.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

# What serving needs; --inexact keeps the test tools an earlier `make test` installed.
$(VENV)/.synced-run: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --no-dev --inexact --compile-bytecode --python $(PYTHON)
	touch $@

run: $(VENV)/.synced-run  ## serve on http://$(HOST):$(PORT) (docs at /docs), SQLite file by default
	$(VENV)/bin/heroapi serve --host $(HOST) --port $(PORT)

PYTEST_ARGS ?=
test: $(VENV)/.synced  ## the whole suite, on SQLite, PostgreSQL and MariaDB
	@if [ "$$CI" = "true" ]; then scripts/ensure-test-packages; fi
	@if [ "$$CI" = "true" ] && [ -x $(BENCH)/setup.sh ]; then $(BENCH)/setup.sh; fi
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.synced  ## the inner loop: SQLite only, no test that starts processes
	HEROAPI_TEST_BACKENDS=sqlite $(VENV)/bin/pytest -m "not processes" $(PYTEST_ARGS)

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

check: lint test

BENCH_ARGS ?=
bench: bench-sqlite bench-postgresql

bench-sqlite: $(VENV)/.synced
	$(BENCH)/setup.sh
	$(PYTHON) $(BENCH)/run.py --targets seed,ceiling,floor,fastcrud,project \
	    --project-dir . --project-cmd "uvicorn heroapi.main:app" \
	    --project-env 'DATABASE_URL=sqlite:///{db}' --project-prepare 'heroapi db upgrade' $(BENCH_ARGS)

bench-postgresql: $(VENV)/.synced
	$(BENCH)/setup.sh
	$(PYTHON) $(BENCH)/run.py --backend postgresql --targets seed,ceiling,floor,fastcrud,project \
	    --project-dir . --project-cmd "uvicorn heroapi.main:app" \
	    --project-env 'DATABASE_URL=postgresql://postgres@127.0.0.1:5432/{db}' \
	    --project-prepare 'heroapi db upgrade' $(BENCH_ARGS)

clean:
	rm -rf .tools $(VENV) .mypy_cache .ruff_cache .pytest_cache
