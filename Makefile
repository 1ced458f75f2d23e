# BizDevOps developer commands. `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
HOST   ?= 127.0.0.1

.PHONY: install run serve test lint format typecheck migrate demo clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	mkdir -p var
	touch $@

install: $(BIN)/.installed

# The embedded default: SQLite under var/, demo data, DEBUG on. Running it twice keeps the data.
migrate: install
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput

demo: migrate
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py seed_demo

# Web server + Celery worker + beat (KPI jobs run on schedule); Redis when REDIS_URL is set,
# else a file-system queue under var/celery. `exec`: devserver is make's own child, so a
# SIGTERM make forwards reaches it; Ctrl-C, SIGTERM and SIGHUP (a closed terminal) stop the
# server, the workers and beat (docs/development.md).
run: demo
	@echo "BizDevOps on http://$(HOST):$(PORT)/  (log in as pm / demo; admin / demo for /admin/)"
	@DEBUG=$${DEBUG:-1} exec $(BIN)/python manage.py devserver $(HOST):$(PORT)

# ruff, and the layering of docs/architecture.md (import-linter, contracts in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	DEBUG=1 $(BIN)/mypy .

# SQLite by default; with DATABASE_URL / REDIS_URL set (as .ci/run does) against the real services.
test: lint typecheck
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=1 $(BIN)/pytest

# The slow fault tests of docs/reliability.md (10,000 due jobs at once, run by two workers):
# needs DATABASE_URL (PostgreSQL) and REDIS_URL, as .ci/run sets them.
.PHONY: faults
faults: install
	DEBUG=1 $(BIN)/pytest -m faults tests/integration

# PNGs of the board, an initiative page and its gate panel for docs/img/, from a fresh demo
# database in a temporary folder (needs Chromium: apt-get install chromium).
.PHONY: screenshots
screenshots: install
	$(BIN)/python scripts/screenshots.py

# Speed at portfolio scale against raw SQL baselines (docs/benchmarks.md says what is measured).
# Needs PostgreSQL (DATABASE_URL: the bench creates and drops a database of its own on that
# server; default postgres://postgres@127.0.0.1:5432/postgres) and Redis (REDIS_URL, default
# db 7) for the Celery rows. SCALE=full (10M measurements; tens of minutes) writes
# docs/benchmarks.md; SCALE=small (1/20 of it, the quick check) writes var/benchmarks-small.md.
# To iterate on a few rows: `scripts/bench.py --keep --no-celery` keeps its database (and names
# it); `scripts/bench.py --reuse <dbname> --only board,api` measures again in it without building
# (writes var/benchmarks-partial.md; `dropdb <dbname>` at the end). `scripts/bench.py --help`.
SCALE ?= full
.PHONY: bench
bench: install
	$(BIN)/python scripts/bench.py --scale $(SCALE)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
