# One command to set up and run each thing; every target creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/demo

.PHONY: demo study study-scenes test test-fast clean

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

# The paper's grid on the tiny preset, where depth pays (docs/depth_screen.md): about 2.5 hours of training on
# 2 cores plus the analysis; resumes if interrupted.
study: $(VENV)/.base
	$(BIN)/blockmae study studies/hierarchy/study.yaml --out runs/hierarchy --publish docs/results/hierarchy

# The same grid on the first preset, tiny-scenes (about 90 minutes on 2 cores), where depth does not pay.
study-scenes: $(VENV)/.base
	$(BIN)/blockmae study studies/cpu_repro/study.yaml --out runs/cpu_repro --publish docs/results/cpu_repro

# Everything (what CI runs), on two worker processes, one per core; a test file stays on one worker so
# its module fixtures are built once. `PYTEST_ARGS=-n0`: in this process (a debugger, -x).
# Bytecode is cached (__pycache__, git-ignored) even where the environment turns that off: otherwise every worker and
# every process a test starts compiles blockmae and the tests again.
PYTEST_ARGS ?= -n 2 --dist loadfile
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q
test: $(VENV)/.test
	$(PYTEST) $(PYTEST_ARGS)

# The fast tier: no real processes, no training beyond a few steps.
test-fast: $(VENV)/.test
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
