# The two commands of the README. Everything they need is installed from these files.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint chromium

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
	SECRET_KEY=test-only $(BIN)/mypy

## Browser tests drive Debian's Chromium; install it when missing and we may (root with apt-get).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "Browser tests need /usr/bin/chromium: sudo apt-get install chromium (they are skipped without it)"; fi

## Set up and run the whole test suite (lint: ruff and mypy; Django checks, migrations, pytest).
test: $(STAMP) chromium lint
	SECRET_KEY=test-only $(BIN)/python manage.py check --fail-level WARNING
	SECRET_KEY=test-only $(BIN)/python manage.py makemigrations --check --dry-run
	SECRET_KEY=test-only $(BIN)/pytest $(PYTEST_ARGS)
