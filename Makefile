# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv and installs Handoff into it the first time (or when pyproject.toml changes).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: demo test lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/handoff demo

# one worker a core, each test file on one worker (a file's module fixtures, such as its
# generated org, are built once); `.venv/bin/python -m pytest` alone runs in one process
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n auto --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check .
