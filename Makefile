# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# `make run` installs what running needs; `make test` adds the dev extra (linters, pytest, a browser driver). Each
# has its stamp; the dev install holds everything running needs, so it stamps both.
RUN_STAMP = $(VENV)/.installed-run
STAMP     = $(VENV)/.installed
# WAHA's published Python SDKs, which the compatibility suite drives (tests/compat/test_waha_sdks.py). Both import as
# `waha`, so neither can join the dev extra: each goes in a directory of its own under $(VENV)/sdk, which the test
# puts on the PYTHONPATH of the process that runs that SDK's flow.
SDKS      = $(VENV)/sdk/.installed

.PHONY: run test test-fast lint typecheck docs pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

$(SDKS): Makefile | $(BIN)/python
	rm -rf $(VENV)/sdk
	$(BIN)/python -m pip install -q --target $(VENV)/sdk/waha-py waha-py==2026.7.2
	$(BIN)/python -m pip install -q --target $(VENV)/sdk/waha waha==1.0.5
	touch $(SDKS)

run: $(RUN_STAMP)
	$(BIN)/wagate serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict

# The docs site, built strict into site/ (a broken link or anchor, a page left out of the nav, fails it). Material's
# notice about its own future is silenced: it is not about this site.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Every test, in parallel (pytest-xdist): each uses its own ports, files and PostgreSQL schema. More workers than
# cores, as most end-to-end tests wait on their processes; `worksteal` hands the tail of a worker's queue to an idle
# one, so a few long tests do not leave the others waiting.
PYTEST_WORKERS ?= 4
# The tests start a few hundred processes; where the environment sets PYTHONDONTWRITEBYTECODE, each would compile
# wagate's modules again. Compiled once here, they are read (the variable only stops writing them).
pytest: $(STAMP) $(SDKS)
	$(BIN)/python -m compileall -q src tests
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal

test: lint typecheck docs pytest

# The fast tier: no process started, no PostgreSQL or Redis (the markers that tests.support.tiers checks). Its
# supervisor tests wait on the simulator more than they compute: as many workers as the whole suite's.
test-fast: $(STAMP)
	$(BIN)/python -m compileall -q src tests
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal -m "not e2e and not services"

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache site
