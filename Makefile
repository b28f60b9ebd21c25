# honeyatlas: `make run` serves on the embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run demo cluster test check lint setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# The first time, `user ensure-admin` adds an admin named admin and prints its password once
# (log in on the map with it); later runs find a user and say nothing.
run: $(STAMP)
	$(BIN)/honeyatlas user ensure-admin
	$(BIN)/honeyatlas serve

# The demo opens straight onto the moving map: its public view (redacted) needs no login;
# "Log in" with the printed admin password shows everything.
demo: $(STAMP)
	$(BIN)/honeyatlas user ensure-admin
	$(BIN)/honeyatlas serve --demo --public

# A small cluster on this host (docs/scaling.md): nats-server, PostgreSQL (Debian's package),
# 2 ingest, 2 workers and 1 web process, with the demo honeynet; the map on :8080.
cluster: $(STAMP)
	$(BIN)/honeyatlas cluster --demo

test: $(STAMP)
	scripts/test-deps
	scripts/honeypots-setup
	$(BIN)/ruff check src tests tools benchmarks
	$(BIN)/lint-imports
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
