# The two commands of the README. Everything they need is installed from these files.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

## Set up and run the console with demo data at http://127.0.0.1:8000 (SQLite, tasks in process).
demo: $(STAMP)
	DEBUG=true $(BIN)/python manage.py migrate --no-input
	DEBUG=true $(BIN)/python manage.py seed_demo
	DEBUG=true $(BIN)/python manage.py runserver 127.0.0.1:8000

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Set up and run the whole test suite (lint, Django checks, migrations, pytest).
test: $(STAMP) lint
	SECRET_KEY=test-only $(BIN)/python manage.py check --fail-level WARNING
	SECRET_KEY=test-only $(BIN)/python manage.py makemigrations --check --dry-run
	SECRET_KEY=test-only $(BIN)/pytest $(PYTEST_ARGS)
