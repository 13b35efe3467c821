# Quick start: `make demo` and `make test`; both build the environment from scratch if needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# DuckDB 1.4 (and pytz) in a virtualenv of its own: tests/server/test_bi_snapshot.py opens the BI
# snapshot with it, as an older BI client would. Made once; a failed install only skips that check.
VENV14 ?= .venv-duckdb14
STAMP14 := $(VENV14)/.installed

.PHONY: demo test lint format docs bench soak clean duckdb14

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,spark]"
	touch $(STAMP)

$(STAMP14):
	$(PYTHON) -m venv $(VENV14)
	$(VENV14)/bin/python -m pip install --quiet "duckdb==1.4.*" pytz && touch $(STAMP14) \
	  || echo "note: DuckDB 1.4 not installed; tests/server/test_bi_snapshot.py skips its DuckDB 1.4 check"

duckdb14: $(STAMP14)

demo: $(STAMP)
	$(BIN)/evalstore demo demo.duckdb --overwrite

# tests run in a shuffled order (pytest-randomly; the header prints the seed: rerun a failure
# with --randomly-seed=N); whole files go to one xdist worker, so module fixtures build once,
# the costliest files first (tests/conftest.py orders them by their seconds in the last runs;
# --no-loadscope-reorder keeps that order instead of xdist's by number of tests).
# Bytecode caching stays on even where PYTHONDONTWRITEBYTECODE is set: without it every worker
# and every CLI/server process the tests start compiles the package, and pytest rewrites every
# test module's asserts, again (~5 s of CPU per worker at collection).
# The tests' store files go to RAM (/dev/shm, when it has 4 GB free): DuckDB syncs every commit
# to disk, which cost more wall time than the tests' CPU on a busy disk (four core/metrics files:
# 22-60 s on disk, 14-15 s in RAM, the same CPU); a passed test's directory is removed as it ends,
# and only the last session's directory is kept (a failed run leaves ~1.3 GB there until the next).
TEST_TMP := $(shell df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 > 4000000 {print "/dev/shm"}')
test: $(STAMP) $(STAMP14)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(if $(TEST_TMP),TMPDIR=$(TEST_TMP) )PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n auto \
	  --dist loadfile --no-loadscope-reorder -p randomly $(if $(TEST_TMP),-o tmp_path_retention_policy=failed -o tmp_path_retention_count=1 )\
	  evalstore server tests

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# the generated pages of docs/ (SQL and CLI references, HTTP statuses): docs/_generate.py
docs: $(STAMP)
	$(BIN)/cog -r -I docs docs/*.md

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py

# kill -9 durability soak (20 kills by default; SOAK_ARGS="--kills 40 --max-delay 10")
soak: $(STAMP)
	$(BIN)/python benchmarks/soak_durability.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(VENV14) demo.duckdb .pytest_cache .hypothesis
