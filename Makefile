# geo311 — `make run` and `make test` set up everything they need on a fresh Debian machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PORT ?= 8000
export PORT
export UV_PYTHON_DOWNLOADS := never
PG_EXT_DIR := /usr/share/postgresql/15/extension
UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: help run test lint format setup system-deps python-env map-assets bench clean-data

help:
	@echo "make run   — set up, start PostGIS, load the demo city, serve on http://127.0.0.1:$(PORT)"
	@echo "make test  — set up, lint (ruff, mypy, import-linter), run the whole test suite"

run: setup
	$(UV) run geo311 run --port $(PORT)

# Test workers (pytest-xdist): each is a process with its own throwaway PostGIS cluster, so tests
# of different workers share nothing (a module whose tests share a module fixture stays on one
# worker: tests/conftest.py groups it); `make test TEST_WORKERS=0` runs in one process, and
# PYTEST_ARGS adds options (e.g. PYTEST_ARGS=--durations=20).
PYTEST_ARGS ?=
TEST_WORKERS ?= auto
test: setup lint
	$(UV) run pytest -q -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: python-env
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(UV) run mypy
	$(UV) run lint-imports

format: python-env
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

setup: system-deps python-env map-assets

# Debian packages, installed only when missing: PostgreSQL 15 with PostGIS and pgRouting, and
# Chromium for the browser tests of the pages.
SYSTEM_PACKAGES := postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting chromium
system-deps:
	@if [ ! -x /usr/lib/postgresql/15/bin/initdb ] || [ ! -f $(PG_EXT_DIR)/postgis.control ] \
	   || [ ! -f $(PG_EXT_DIR)/pgrouting.control ] || [ ! -x /usr/bin/chromium ]; then \
	  echo "Installing $(SYSTEM_PACKAGES) (apt)…"; \
	  $(APT) update -qq && $(APT) install -y -qq $(SYSTEM_PACKAGES); \
	fi

# uv (installed with pip when missing), then the locked environment.
python-env:
	@if [ ! -x "$(UV)" ]; then \
	  echo "Installing uv…"; \
	  if ! python3 -m pip --version >/dev/null 2>&1; then $(APT) update -qq && $(APT) install -y -qq python3-pip; fi; \
	  python3 -m pip install --user --quiet uv 2>/dev/null \
	    || python3 -m pip install --user --quiet --break-system-packages uv; \
	fi
	$(eval UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv))
	$(UV) sync --locked --quiet

# The map pages' JavaScript and CSS, at the versions maps/package-lock.json pins (with their
# integrity hashes): Node and npm from Debian when missing, then `npm ci` whenever
# maps/node_modules is missing or older than the lockfile. geo311 serves the files itself.
map-assets:
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "Installing nodejs npm (apt)…"; \
	  $(APT) update -qq && $(APT) install -y -qq nodejs npm; \
	fi
	@if [ ! -f maps/node_modules/.package-lock.json ] \
	   || [ maps/package-lock.json -nt maps/node_modules/.package-lock.json ]; then \
	  echo "Installing the map pages' packages (npm ci)…"; \
	  npm ci --prefix maps --no-audit --no-fund --ignore-scripts --loglevel=error; \
	fi

bench: setup
	$(UV) run python bench/intake.py

# Citus (distributed PostgreSQL): its source is in ../shared/vendor/citus (not in Debian's
# archive). Built and installed into the system PostgreSQL 15 when missing; with neither the
# extension nor the source, test-citus says so and stops without failing.
CITUS_SRC := $(abspath ../shared/vendor/citus)
CITUS_TARBALL := $(CITUS_SRC)/citus-13.2.2.tar.gz
CITUS_BUILD_DEPS := postgresql-server-dev-15 libcurl4-openssl-dev liblz4-dev libzstd-dev \
  libkrb5-dev libssl-dev libselinux1-dev libxslt1-dev libpam0g-dev libedit-dev libicu-dev
CITUS_INSTALLED = test -f $(PG_EXT_DIR)/citus.control -a -f /usr/lib/postgresql/15/lib/citus.so

.PHONY: citus test-citus
citus: system-deps
	@if $(CITUS_INSTALLED); then exit 0; fi; \
	if [ ! -f "$(CITUS_TARBALL)" ]; then \
	  echo "Citus is not installed and its source is not at $(CITUS_SRC): nothing to build."; \
	  exit 0; \
	fi; \
	echo "Building Citus from $(CITUS_TARBALL) (about 2 minutes)…"; \
	$(APT) update -qq && $(APT) install -y -qq $(CITUS_BUILD_DEPS) && \
	build=$$(mktemp -d) && tar xzf "$(CITUS_TARBALL)" -C "$$build" && \
	cd "$$build"/citus-13.2.2 && patch -p1 -s < "$(CITUS_SRC)"/pg15.20-have_createdb_privilege.patch && \
	./configure -q PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null && \
	$(MAKE) -s -j2 >/dev/null && $(SUDO) $(MAKE) -s install >/dev/null && \
	rm -rf "$$build" && echo "Citus installed."

# The database tests of the suite on a local Citus cluster (coordinator + 2 workers), plus
# the Citus checks in tests/citus. CITUS_TESTS narrows it (e.g. CITUS_TESTS=tests/citus);
# CITUS_WORKERS xdist workers (at most 2, tests/conftest.py), each with a cluster of its own.
CITUS_TESTS ?= tests
CITUS_WORKERS ?= 2
test-citus: setup citus
	@if ! $(CITUS_INSTALLED); then \
	  echo "SKIPPED: Citus is neither installed nor in $(CITUS_SRC); make test-citus ran no tests."; \
	  exit 0; \
	fi; \
	GEO311_TEST_CITUS=1 $(UV) run pytest -q --citus -n $(CITUS_WORKERS) --dist loadgroup $(CITUS_TESTS)
