# Push365: the two commands a new developer needs are `make dev` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed


.PHONY: dev test lint checkov browser bundle bundle-check unit bench store-check audit mutate venv clean solution provider-schema

## dev: set up .venv, then run every function, the Firestore and Pub/Sub emulators and the local FCM server
dev: $(STAMP)
	$(PY) -m devstack

## TEST_WORKERS: pytest processes (pytest-xdist; a file each at a time): the fault tests mostly
## wait, so a second process runs the rest meanwhile
TEST_WORKERS ?= 2

## test: lint, type-check, checkov, the bundle check and the whole suite (starts and stops its own emulators)
test: $(STAMP) lint checkov browser bundle-check provider-schema
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

## lint: ruff and mypy
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## checkov: static checks of infra/ (any skip is written next to its resource, with the reason)
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov -d infra --compact --quiet --skip-download

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

## provider-schema: the google provider's schema from its generated bindings (npm), for
## tests/unit/test_provider_schema.py (reported NOT RUN without it); fetched once into .local/
provider-schema: $(STAMP)
	@$(PY) -m devstack.provider_schema || \
	  echo "WARNING: the provider schema could not be fetched: the schema check will be NOT RUN"

## browser: Debian's Chromium for the browser tests (they are reported as NOT RUN without it)
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium for the browser tests..."; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "WARNING: chromium could not be installed: the browser tests will be NOT RUN"; \
	  else \
	    echo "WARNING: no $(CHROMIUM) and no root apt-get: the browser tests will be NOT RUN"; \
	  fi; \
	fi

## bundle: build web/firebase-messaging.js (the Firebase JS SDK) and web/charts.js (Chart.js, for
## the delivery report), both pinned in web/sdk/package-lock.json
SDK_DIR := web/sdk
$(SDK_DIR)/node_modules/.installed: $(SDK_DIR)/package.json $(SDK_DIR)/package-lock.json
	cd $(SDK_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bundle: $(SDK_DIR)/node_modules/.installed
	cd $(SDK_DIR) && npm run --silent build -- --log-level=warning --outfile=../firebase-messaging.js
	cd $(SDK_DIR) && npm run --silent build:charts -- --log-level=warning --outfile=../charts.js

## bundle-check: the committed bundles are exactly what their sources and lockfile build
bundle-check: $(SDK_DIR)/node_modules/.installed
	@mkdir -p .local
	cd $(SDK_DIR) && npm run --silent build -- --log-level=warning --outfile=../../.local/firebase-messaging.js
	cd $(SDK_DIR) && npm run --silent build:charts -- --log-level=warning --outfile=../../.local/charts.js
	@for bundle in firebase-messaging.js charts.js; do \
	  cmp -s .local/$$bundle web/$$bundle || \
	    { echo "web/$$bundle is stale: run 'make bundle' and commit it"; exit 1; }; \
	done

## solution: the Dynamics 365 solution, unmanaged and managed, into dist/ (push365_<version>*.zip)
solution:
	$(PYTHON) -m dynamics.packer --out dist

## unit: only the fast tests that need no emulator
unit: $(STAMP)
	$(PY) -m pytest tests/unit

## store-check: check every document of the store (by default the one `make dev` runs:
## PUSH365_FIRESTORE_PORT, 8080) against the privacy policy's data file
## (shared/push365/privacy/policy_fields.json): names, values, ages and TTLs. CONTENT="a;b": the
## notification texts the run sent, reported wherever they are stored. (Not the API call records
## of shared/push365/audit/: those are logs.)
store-check: $(STAMP)
	FIRESTORE_EMULATOR_HOST=$${FIRESTORE_EMULATOR_HOST-127.0.0.1:$${PUSH365_FIRESTORE_PORT-8080}} \
	GOOGLE_CLOUD_PROJECT=$${GOOGLE_CLOUD_PROJECT-demo-push365} $(PY) -m push365.compliance \
	  $(if $(CONTENT),--content-list '$(CONTENT)')

## audit: the same as store-check (its older name)
audit: store-check

## mutate: break each privacy promise on purpose (tests/privacy/mutations.yaml) and expect the
## tests named for it to fail; prints RESULT privacy_mutations caught=N total=M (.ci/run runs it)
mutate: $(STAMP)
	$(PY) -m devstack.mutate

## bench: the benchmarks in bench/, each printing a RESULT line against its baseline
bench: $(STAMP)
	$(PY) bench/fanout.py
	$(PY) bench/deliver_cpu.py
	$(PY) bench/purge.py
	$(PY) bench/route_cost.py
	$(PY) bench/soak.py

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-setup.txt shared/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	# Editable, so that edits under shared/ take effect without a reinstall.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e ./shared
	@touch $@

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache
