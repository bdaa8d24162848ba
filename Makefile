# Blendwise: the two commands are `make demo` and `make test`. Both build .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
EXTRAS := dev,slack,discord,teams,ai,postgres,reports

.PHONY: demo test lint typecheck bench bench-pipeline report clean install

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/blendwise demo

test: $(STAMP)
	$(BIN)/ruff check bot tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/tick.py

# Enrol + tick + drain beside the APScheduler one-job-per-delivery peer, in one run (docs/performance.md).
bench-pipeline: $(STAMP)
	$(BIN)/python benchmarks/pipeline.py --learners 10000

report: $(STAMP)
	$(BIN)/blendwise report --database-url sqlite:///blendwise.db --format html --output report.html

clean:
	rm -rf $(VENV) *.db *.db-wal *.db-shm .pytest_cache .ruff_cache .mypy_cache
