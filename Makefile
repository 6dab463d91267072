# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
SHELL := bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test bench lint clean compile lock

# Every package at the version constraints.txt pins (`make lock` refreshes it).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | { grep -v '^WARNING: Location' || true; }
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $(STAMP)

# Resolve the whole dependency tree afresh from pyproject.toml and pin it in constraints.txt.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | { grep -v '^WARNING: Location' || true; }
	.lock-venv/bin/python -m pip install --quiet -e '.[test]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	{ echo "# The whole dependency tree, pinned; refresh with 'make lock'."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^vetpro-workflow'; } > constraints.txt
	rm -rf .lock-venv

# Compiled once, so that every command starts fast even where bytecode is not written
# (PYTHONDONTWRITEBYTECODE).
compile: $(STAMP)
	@$(BIN)/python -m compileall -q src

demo: $(STAMP) compile
	$(BIN)/vetpro demo

test: $(STAMP) compile
	$(BIN)/python -m pytest

bench: $(STAMP) compile
	$(BIN)/python benchmarks/transitions.py
	$(BIN)/python benchmarks/mail.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/cli.py
	$(BIN)/python benchmarks/web.py
	$(BIN)/python benchmarks/postgres.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) .demo .pytest_cache
