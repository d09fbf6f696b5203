# failoverd: `make demo` and `make test` do all set-up on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SCHEDULES ?= 2000
SEED ?= 1
MODE ?= all
FIRST ?= 0

.PHONY: demo test lint typecheck unit sim bench system-deps docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,etcd]'
	touch $(STAMP)

# Real components the tests use (Dovecot, HAProxy, ...). Installed only as root;
# tests that need them skip with a reason otherwise.
system-deps:
	@if [ "$$(id -u)" = 0 ]; then ./.ci/system-deps; else echo "system-deps: not root, skipping apt packages (tests needing them will skip)"; fi

demo: $(STAMP)
	$(BIN)/failoverd demo

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy src

test: $(STAMP) system-deps lint typecheck
	$(BIN)/python -m pytest -q -ra

sim: $(STAMP)
	$(BIN)/python -m tests.sim --schedules $(SCHEDULES) --seed $(SEED) --mode $(MODE) --first $(FIRST) $(if $(LEDGER),--ledger $(LEDGER)) $(if $(FILL),--fill $(FILL))

bench: $(STAMP) system-deps
	$(BIN)/python -m bench $(BENCH_ARGS)

# The generated parts of the docs: the configuration reference (from the schema)
# and the state diagram in docs/architecture.md (from the transition table).
# tests/unit/test_docs.py fails when either is stale.
docs: $(STAMP)
	$(BIN)/python -m failoverd.config.reference > docs/configuration.md.tmp
	mv docs/configuration.md.tmp docs/configuration.md
	$(BIN)/python -c 'from failoverd.cli.docs_cmds import rewrite; rewrite("docs/architecture.md")'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
