# ZQuant Scheduler. Two commands do everything on a fresh machine:
#   make up     install, build, start the whole stack (embedded SQLite), print the URL and login
#   make test   install, check generated code and lint, run every test tier
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BIN ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := tools/node_modules/.bin/buf
CHROMIUM := /usr/bin/chromium

.PHONY: help install proto proto-check web up up-cluster test lint unit integration browser bench clean

help:
	@echo "make up      start the whole stack on SQLite and print the URL and admin login"
	@echo "make up-cluster  the same with replicas on PostgreSQL (ZQ_DATABASE_URL, default the local"
	@echo "             test database): 2 registries, 2 schedulers, 3 executors, Envoy, metrics; kill one to watch failover"
	@echo "make test    everything CI runs: generated-code check, lint, unit, integration, browser tests"
	@echo "make proto   regenerate gen/ and gateway/build/descriptor.pb from protos/"
	@echo "make lint    ruff, mypy --strict, buf lint and buf breaking"
	@echo "make bench   run the benchmarks in bench/"

# The venv is rebuilt when pyproject.toml changes; the checkout and gen/ go on its path.
$(VENV)/.installed: pyproject.toml
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	printf '%s\n%s\n' "$(CURDIR)" "$(CURDIR)/gen" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/zquant_paths.pth"
	touch $@

tools/node_modules/.installed: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed tools/node_modules/.installed

proto: $(VENV)/.installed
	$(PY) scripts/gen_protos.py

# CI fails when the committed generated code does not match protos/.
proto-check: proto
	@git diff --exit-code --stat -- gen/ || (echo "gen/ is stale: run 'make proto' and commit" && exit 1)
	@test -z "$$(git status --porcelain --untracked-files=all -- gen/)" || (echo "gen/ has untracked files: run 'make proto' and commit" && exit 1)

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web: web/node_modules/.installed
	cd web && npm run build

up: install proto web
	$(PY) scripts/init_scheduler.py
	$(PY) -m services.stack up

# Replicas need PostgreSQL (they share its LISTEN/NOTIFY); SQLite is refused before the database is touched.
CLUSTER_DATABASE_URL ?= $(or $(ZQ_DATABASE_URL),postgresql://postgres@127.0.0.1:5432/test)
up-cluster: install proto web
	@case '$(CLUSTER_DATABASE_URL)' in postgres*) ;; *) echo "make up-cluster needs PostgreSQL, not '$(CLUSTER_DATABASE_URL)': set ZQ_DATABASE_URL=postgresql://..."; exit 2;; esac
	ZQ_DATABASE_URL='$(CLUSTER_DATABASE_URL)' $(PY) scripts/init_scheduler.py
	ZQ_DATABASE_URL='$(CLUSTER_DATABASE_URL)' $(PY) -m services.stack up-cluster

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services scripts gateway tests bench deploy
	$(BUF) lint
	$(BUF) breaking --against '.git#branch=main'

# Browser tests drive Debian's Chromium; the CJK fonts make the Chinese UI render in screenshots.
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null

unit: install proto
	$(PY) -m pytest -q tests/unit

integration: install proto web
	$(PY) -m pytest -q tests/integration

browser: install proto web $(CHROMIUM)
	$(PY) -m pytest -q tests/browser

test: install proto-check lint web $(CHROMIUM)
	cd web && npm test --silent
	$(PY) -m pytest -q tests

# wrk drives the REST throughput benchmark (without it a slower Python client shares the 2 cores).
/usr/bin/wrk:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

bench: install proto /usr/bin/wrk
	$(PY) -m bench

clean:
	rm -rf $(VENV) tools/node_modules web/node_modules web/dist gateway/build var
