# refdesk: the two commands a newcomer runs are `make run` and `make test`.
#
#   make run     migrate, seed the demo and serve refdesk on the embedded default
#                (SQLite, in-memory channel layer, Celery inside the web process)
#   make test    lint, migration check and the whole suite on PostgreSQL and Redis
#                (scripts/with-services finds them or starts throwaway ones)
#   make lint | format | clean | help
#
# Variables: HOST (127.0.0.1), PORT (8000), PYTEST_ARGS (e.g. "-x tests/chat").

SHELL := /bin/bash
.DEFAULT_GOAL := help

HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
# pip warns about this machine's pip configuration on every package: drop only that.
PIP_QUIET_STDERR := 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check

# The first Python >= 3.12 that actually runs. Candidates are run, not just
# looked up: pyenv's shims for python3.12/python3.13 are on PATH but fail when
# pyenv's global version is older, so pyenv's own interpreters come last.
PYENV_ROOT_DIR = $(or $(shell pyenv root 2>/dev/null),$(PYENV_ROOT),$(wildcard $(HOME)/.pyenv))
PYTHON_CANDIDATES = python3.13 python3.12 python3 \
	$(if $(PYENV_ROOT_DIR),$(sort $(wildcard $(PYENV_ROOT_DIR)/versions/3.13*/bin/python3.13)) \
	$(sort $(wildcard $(PYENV_ROOT_DIR)/versions/3.12*/bin/python3.12)))
FIND_PYTHON = for c in $(PYTHON_CANDIDATES); do \
	  if "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then \
	    echo "$$c"; break; \
	  fi; \
	done

# The address to print: a wildcard bind is reached through loopback.
SHOW_HOST = $(if $(filter 0.0.0.0 :: [::],$(HOST)),127.0.0.1,$(HOST))
BASE_URL = http://$(SHOW_HOST):$(PORT)

.PHONY: help run test test-steps lint format clean chromium venv venv-dev

help:
	@echo "make run     start refdesk on the embedded default at $(BASE_URL)/ (HOST, PORT)"
	@echo "make test    lint and run the whole suite on PostgreSQL and Redis (PYTEST_ARGS)"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make format  ruff format and ruff check --fix"
	@echo "make clean   remove the demo database, collected static files and caches"
	@echo "make bench   refdesk vs a plain Channels chat and a bare relay, ~3 min with setup (BENCH_ARGS=--full: ~14 min)"

# The virtual environment
# ----------------------------------------------------------------------
$(PY):
	@python="$$($(FIND_PYTHON))"; \
	if [ -z "$$python" ]; then \
	  echo "refdesk needs Python 3.12 or newer (Django 6): install python3.12 or python3.13 and run make again." >&2; \
	  exit 1; \
	fi; \
	echo "Creating $(VENV) with $$python ($$("$$python" -c 'import platform; print(platform.python_version())'))"; \
	"$$python" -m venv $(VENV)

# An existing .venv made with an older Python is refused rather than deleted.
define CHECK_VENV_PYTHON
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { \
	  echo "$(VENV) runs Python $$($(PY) -c 'import platform; print(platform.python_version())'); refdesk needs 3.12 or newer. Remove $(VENV) (rm -rf $(VENV)) and run make again." >&2; \
	  exit 1; }
endef

$(RUNTIME_STAMP): requirements.txt | $(PY)
	$(CHECK_VENV_PYTHON)
	@echo "Installing requirements.txt into $(VENV)"
	@$(PIP_INSTALL) -r requirements.txt $(PIP_QUIET_STDERR)
	@touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(CHECK_VENV_PYTHON)
	@echo "Installing requirements-dev.txt into $(VENV)"
	@$(PIP_INSTALL) -r requirements-dev.txt $(PIP_QUIET_STDERR)
	@touch $@ $(RUNTIME_STAMP)

venv: $(RUNTIME_STAMP)
venv-dev: $(DEV_STAMP)

# make run: the embedded default, no services needed
# ----------------------------------------------------------------------
run: $(RUNTIME_STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --always-open
	@$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo
	@echo "refdesk is starting at $(BASE_URL)/  (Ctrl-C stops it)"
	@echo "  patron page   $(BASE_URL)/ask/springfield/"
	@echo "  widget demo   $(BASE_URL)/demo/springfield/"
	@echo "  desk          $(BASE_URL)/desk/"
	@echo "  admin         $(BASE_URL)/admin/"
	@echo "  librarians    springfield-1, springfield-2, shelbyville-1, shelbyville-2,"
	@echo "                ogdenville-1, ogdenville-2; consortium admin: admin"
	@echo "  password      $${DEMO_PASSWORD:-refdesk-demo}  (the DEMO_PASSWORD variable when seeded)"
	@echo
	exec $(VENV)/bin/uvicorn refdesk.asgi:application --host $(HOST) --port $(PORT) \
	  --log-level warning --no-access-log --no-proxy-headers --ws auto

# make test: everything CI checks, on the real services
# ----------------------------------------------------------------------
test: $(DEV_STAMP) chromium
	scripts/with-services $(MAKE) --no-print-directory test-steps

# Runs every step, even after one fails, so one run reports every problem;
# fails if any step failed (pytest's own exit codes, 5 "no tests" included).
test-steps:
	@failed=(); \
	step() { echo "+ $$*"; "$$@" || failed+=("$$*"); }; \
	step $(VENV)/bin/ruff check .; \
	step $(VENV)/bin/ruff format --check .; \
	step $(PY) manage.py makemigrations --check --dry-run; \
	step $(PY) -m pytest $(PYTEST_ARGS); \
	if [ $${#failed[@]} -gt 0 ]; then \
	  printf 'make test: FAILED: %s\n' "$${failed[@]}" >&2; exit 1; \
	fi; \
	echo "make test: all steps passed"

# Browser tests drive Debian's Chromium; never `playwright install` (it
# downloads a browser from a host that this network cannot reach).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium package for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "The browser tests need Chromium at /usr/bin/chromium: install the chromium package (sudo apt-get install chromium) and run make test again." >&2; \
	    exit 1; \
	  fi; \
	fi

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# make bench: refdesk against a plain Channels chat and a bare relay, side by side
# (bench/README.md). Starts its own PostgreSQL, Redis and servers on loopback and
# stops them; writes bench/results/. BENCH_ARGS=--full for 50/200/1000 conversations.
# ----------------------------------------------------------------------
.PHONY: bench
bench: $(DEV_STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

# Keeps .venv; remove it by hand to rebuild it from scratch.
clean:
	rm -rf db.sqlite3 db.sqlite3-* staticfiles .pytest_cache .ruff_cache .hypothesis .test-services
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
