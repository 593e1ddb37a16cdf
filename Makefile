# One command to set up and run each thing; every target creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/demo

.PHONY: demo study test test-fast clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps re-install when the package metadata or the pins change.
$(VENV)/.base: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

demo: $(VENV)/.base
	$(BIN)/blockmae demo --out $(OUT)

# The paper's grid at CPU scale (about 90 minutes on 2 cores); resumes if interrupted.
study: $(VENV)/.base
	$(BIN)/blockmae study studies/cpu_repro/study.yaml --out runs/cpu_repro --publish docs/results/cpu_repro

# Everything (what CI runs, ~5 minutes on 2 cores).
test: $(VENV)/.test
	$(BIN)/python -m pytest -q

# The fast tier (under a minute): no real processes, no training beyond a few steps.
test-fast: $(VENV)/.test
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
