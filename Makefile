# The two commands of the README: `make demo` and `make test`. Both install what they need.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: dev dev-python demo test test-fast lint typecheck bench up down status clean

dev: $(VENV)/.installed

# The full install also satisfies the Python-only one (test-fast after dev installs nothing).
$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $(VENV)/.python-installed $@

# The .venv without PostgreSQL: all that ruff, mypy and tests/unit need.
dev-python: $(VENV)/.python-installed

$(VENV)/.python-installed: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh --python-only
	touch $@

lint: dev-python
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: dev-python
	$(BIN)/mypy

# The product's main job on the embedded local stack: sample data, full + incremental syncs through
# the real state machine, a late commit, parity, and a summary. Leaves the stack running.
demo: dev
	$(BIN)/aurora-sync demo

# ruff, mypy, then the whole suite (tests/unit included); the suite starts its own local stack
# and stops it. What CI runs (.ci/run).
test: dev lint typecheck
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

# The loop while coding: ruff, mypy and tests/unit (no server, no PostgreSQL; well under a minute).
test-fast: lint typecheck
	$(BIN)/pytest tests/unit

# The benchmarks of docs/benchmarks.md but 7 (~10 min on 2 cores: 6.0 for 1-6 and 4.3 for 8, measured apart), printed as tables with ratios; one or some with
# `make bench BENCH="planner cold-start"`. Uses (and starts) the default local stack; dlt gets its own
# virtualenv in .local/bench-venv.
bench: dev
	$(BIN)/python bench/run_all.py $(BENCH)

up: dev
	$(BIN)/aurora-sync local up

down: dev
	$(BIN)/aurora-sync local down

status: dev
	$(BIN)/aurora-sync local status

clean: down
	rm -rf .local
