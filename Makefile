# Two commands on a fresh machine: `make run` (install + demo) and `make test` (install + whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test lint browser-deps test-browser test-postgres audit bench

$(VENV)/.deps: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.deps

## Install everything, then run the app beside the sandbox EHR (SQLite, demo defaults).
run: install
	DEBUG=True $(PY) manage.py rundemo

## Debian's Chromium for the browser tests (Playwright cannot download browsers here), and axe-core
## (npm, pinned in package-lock.json) for their accessibility check.
browser-deps: node_modules/axe-core/axe.min.js
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

node_modules/axe-core/axe.min.js: package.json package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: install
	$(VENV)/bin/ruff check .

## Install everything, lint, and run the whole test suite.
test: install browser-deps lint
	$(PY) -m pytest

## Only the browser tests (headless Chromium; screenshots in test-artifacts/browser/).
test-browser: install browser-deps
	$(PY) -m pytest -m browser tests/browser

## The database part of the suite against a throw-away PostgreSQL (apt-installs it if missing).
test-postgres: install
	.ci/postgres-tests

## Security scans: bandit over the project code, pip-audit over the pinned runtime requirements.
## --strict makes a dependency pip-audit could not look up a failure, not a silent pass.
PIP_AUDIT_FLAGS ?= --strict
audit: install
	$(VENV)/bin/bandit -q -r . -x ./.venv,./tests,./staticfiles,./bench-results --severity-level high
	$(VENV)/bin/pip-audit -r requirements.txt --progress-spinner off $(PIP_AUDIT_FLAGS)

## Performance benchmark (not part of the tests): sandbox EHR + app under injected FHIR latency.
## BENCH_ARGS=--quick for one latency in under 2 minutes; results in bench-results/.
bench: install
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) -m bench $(BENCH_ARGS)
