# Workflow Runtime — developer entry points. `make run` and `make test` each create the
# virtualenv and install everything on first use (one pip resolver run).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.installed-local

.PHONY: install run test test-fast fuzz lint bench chaos clean

# Everything (services, Pulumi program, test tools), in one resolver run.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP) $(LOCAL_STAMP)

# Just what the local platform needs, so `make run` starts quickly on a fresh clone.
$(LOCAL_STAMP): requirements-local.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-local.txt
	touch $(LOCAL_STAMP)

install: $(STAMP)

## The whole platform on this machine (embedded Postgres + SQS), examples applied.
run: $(LOCAL_STAMP)
	$(BIN)/wfctl local up --examples

## The whole test suite (embedded Postgres unless TEST_DATABASE_URL is set), on two workers.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not long"

## Everything but the slow end-to-end cases.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow and not long"

## The long fuzz campaign (FUZZ_LONG_FACTOR=10 for 100,000 inputs).
fuzz: $(STAMP)
	$(BIN)/python -m pytest -m long tests/cli/test_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check services infra tests bench policy __main__.py

## The long seeded fault-injection run (tests/chaos): make chaos SEED=7 FAULTS=500
SEED ?= 1
FAULTS ?= 500
chaos: $(STAMP)
	CHAOS_SEED=$(SEED) CHAOS_FAULTS=$(FAULTS) $(BIN)/python -m pytest -q -s -m long tests/chaos -k long_chaos_run

## Speed and memory targets (not part of the test suite).
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
