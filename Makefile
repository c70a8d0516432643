# ftdash: `make run` to try it, `make test` to check it. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export FTDASH_DATA_DIR ?= $(CURDIR)/data

.PHONY: run test install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	FTDASH_DEBUG=$${FTDASH_DEBUG:-true} $(BIN)/python manage.py migrate --noinput
	FTDASH_DEBUG=$${FTDASH_DEBUG:-true} $(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install
	$(BIN)/python -m pytest
