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

.PHONY: run test test-fast lint check bench bench-sqlite bench-postgresql bench-mariadb clean

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

# The benchmark (../shared/bench): `make bench` runs it on SQLite, PostgreSQL, PostgreSQL through
# a PgBouncer of its own (transaction mode) and MariaDB, and prints one table of them all against
# the performance bars; `make bench-sqlite` (-postgresql, -mariadb) one backend. BENCH_ARGS go to
# every run: `make bench BENCH_ARGS="--duration 5 --rows 20000"`.
BENCH_ARGS ?=
bench: $(VENV)/.synced
	$(BENCH)/setup.sh
	$(PYTHON) scripts/bench.py $(BENCH_ARGS)

bench-sqlite bench-postgresql bench-mariadb: bench-%: $(VENV)/.synced
	$(BENCH)/setup.sh
	$(PYTHON) scripts/bench.py --backends $* $(BENCH_ARGS)

clean:
	rm -rf .tools $(VENV) .mypy_cache .ruff_cache .pytest_cache
