# ftdash: `make run` to try it, `make test` to check it. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export FTDASH_DATA_DIR ?= $(CURDIR)/data
export HOST PORT

.PHONY: run serve test test-fast lint format install bench screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

# The development server with the background worker beside it (Ctrl-C stops both).
run: install
	FTDASH_DEBUG=$${FTDASH_DEBUG:-true} $(BIN)/python manage.py migrate --noinput
	export FTDASH_DEBUG=$${FTDASH_DEBUG:-true}; \
	$(BIN)/python manage.py poll_jobs & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production: gunicorn with several workers, DEBUG off, compressed and hashed static files.
serve: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/gunicorn --config ftdash/gunicorn.conf.py ftdash.wsgi:application

# Lint, formatting and the import contract (pyproject.toml's [tool.ruff] and [tool.importlinter]):
# a few seconds, run before every test run. `make format` fixes what ruff can.
LINTED := manage.py ftdash jobs bench tests
lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

# PYTEST_ARGS narrows a run, e.g. make test PYTEST_ARGS='-m "not browser"'
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fast loop while developing: every test that starts no process and drives no browser,
# spread over FAST_WORKERS pytest-xdist workers (each with its own test database, data dir and,
# on the Redis leg, Redis database; pytest-randomly hands them all the same seed). 2, not
# `auto`: the machines this is measured on have 2 cores, and `auto` counts the CPUs a container
# may not be given; on a bigger machine try FAST_WORKERS=auto. `--dist worksteal`: a worker
# that runs out takes tests queued for the other, so the long property tests (10-25 s each)
# do not leave one worker finishing alone. `make test` stays serial.
FAST_WORKERS ?= 2
test-fast:
	$(MAKE) --no-print-directory test PYTEST_ARGS='-m "not browser and not processes" -n $(FAST_WORKERS) --dist worksteal'

# The live-update benchmarks of issue 9 (~15 minutes, one script at a time); writes the figures
# into BENCHMARKS.md. make bench BENCH_ARGS='--smoke' for a quick look, '--only polls' for one.
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Retake the README's screenshots (docs/screenshot.png, docs/screenshot-job.png) from the demo
# jobs of the fake Token Factory, in headless Chromium (apt install chromium).
screenshots: install
	FTDASH_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:randomly -q tests/browser/test_browser_screenshots.py
