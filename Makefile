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

.PHONY: help install proto proto-check web up up-cluster test lint unit integration fuzz browser bench bench-scale bench-purge clean

help:
	@echo "make up      start the whole stack on SQLite and print the URL and admin login"
	@echo "make up-cluster  the same with replicas on PostgreSQL (ZQ_DATABASE_URL, default the local"
	@echo "             test database): 2 registries, 2 schedulers, 3 executors, Envoy, metrics; kill one to watch failover"
	@echo "make test    everything CI runs: generated-code check, lint, unit, integration, fuzz, browser tests"
	@echo "make proto   regenerate gen/ and gateway/build/descriptor.pb from protos/"
	@echo "make lint    ruff, mypy --strict, buf lint and buf breaking"
	@echo "make bench   run the benchmarks in bench/"
	@echo "make bench-scale  100,000 tasks and a burst of 20,000 on both backends (bench/scale.py)"
	@echo "make bench-purge  1,000,000 old runs purged while REST is probed, on both backends (bench/purge.py)"

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

# The services' logs are under $(ZQ_DATA_DIR)/logs (default var/logs); logs/ points there, where the
# guide tells users to look.
up: install proto web
	$(PY) scripts/init_scheduler.py
	ln -sfn "$${ZQ_DATA_DIR:-var}/logs" logs
	$(PY) -m stack up

# Replicas need PostgreSQL (they share its LISTEN/NOTIFY); SQLite is refused before the database is touched.
CLUSTER_DATABASE_URL ?= $(or $(ZQ_DATABASE_URL),postgresql://postgres@127.0.0.1:5432/test)
up-cluster: install proto web
	@case '$(CLUSTER_DATABASE_URL)' in postgres*) ;; *) echo "make up-cluster needs PostgreSQL, not '$(CLUSTER_DATABASE_URL)': set ZQ_DATABASE_URL=postgresql://..."; exit 2;; esac
	ZQ_DATABASE_URL='$(CLUSTER_DATABASE_URL)' $(PY) scripts/init_scheduler.py
	ZQ_DATABASE_URL='$(CLUSTER_DATABASE_URL)' $(PY) -m stack up-cluster

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services stack scripts gateway tests bench deploy cli
	$(BUF) lint
	$(BUF) breaking --against '.git#branch=main'

# Browser tests drive Debian's Chromium; the CJK fonts make the Chinese UI render in screenshots.
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null

# promtool checks and unit-tests the alert rules of deploy/monitoring (tests/unit/deploy).
PROMTOOL := /usr/bin/promtool
$(PROMTOOL):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null

unit: install proto $(PROMTOOL)
	$(PY) -m pytest -q tests/unit

integration: install proto web
	$(PY) -m pytest -q tests/integration

# Hypothesis against the REST contract through the real Envoy (~1-2 min; `make test` runs it too).
fuzz: install proto web
	$(PY) -m pytest -q tests/fuzz

browser: install proto web $(CHROMIUM)
	$(PY) -m pytest -q tests/browser

test: install proto-check lint web $(CHROMIUM) $(PROMTOOL)
	cd web && npm test --silent
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=20 -m 'not solo' tests
	$(PY) -m pytest -q -m solo tests

# wrk drives the REST throughput and the single-create benchmarks (without it a slower Python client shares the 2 cores).
/usr/bin/wrk:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

bench: install proto /usr/bin/wrk
	$(PY) -m bench

# 100,000 tasks and a burst of 20,000 due at once, on both backends (~15 min; ARGS="--tasks 20000").
bench-scale: install proto
	$(PY) -m bench.scale $(ARGS)

# History retention at size: 1,000,000 ended runs purged by the leader's housekeeping while REST is
# probed every 20 ms, on both backends (~10 min each; ARGS="--rows 200000 --backend sqlite").
bench-purge: install proto
	$(PY) -m bench.purge --backend both $(ARGS)

clean:
	rm -rf $(VENV) tools/node_modules web/node_modules web/dist gateway/build var
