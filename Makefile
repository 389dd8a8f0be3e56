# `make demo` and `make test` do all the set-up on a fresh machine: a virtual environment in .venv,
# the package installed (editable) with the extras the target needs, then the job itself.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test test-long test-oldest bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per set of extras: re-installs when setup.cfg changes.
$(VENV)/.installed-%: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$*]"
	touch $@

$(VENV)/.installed-base: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

demo: $(VENV)/.installed-base
	$(BIN)/python examples/quickstart.py

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

# The generated equivalence suites with their long hypothesis profile (CI runs a bounded one).
test-long: $(VENV)/.installed-test
	ML_TOOLBOX_LONG=1 $(BIN)/python -m pytest -q tests/test_fast_equivalence.py

# The suite on the oldest versions setup.cfg declares: every floor pinned exactly (.ci/floors.py),
# on the oldest Python python_requires allows, in a virtual environment of its own.
PYTHON_OLDEST ?= python3.11
OLDEST        ?= .venv-oldest

$(OLDEST)/.installed: setup.cfg pyproject.toml .ci/floors.py
	$(PYTHON_OLDEST) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON_OLDEST) .ci/floors.py test > $(OLDEST)/constraints.txt
	$(OLDEST)/bin/python -m pip install --quiet -c $(OLDEST)/constraints.txt -e ".[test]"
	touch $@

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pytest -x -q -p no:cacheprovider

bench: $(VENV)/.installed-bench
	COLUMNS=$${COLUMNS:-200} $(BIN)/python -m benchmarks $(BENCH)

# docs/api.md, the API reference, generated from the numpydoc docstrings (tests check it is current);
# the `docs` extra brings numpydoc, whose parser reads them.
docs: $(VENV)/.installed-docs
	$(BIN)/python -m ml_toolbox._apidoc

clean:
	rm -rf $(VENV) $(OLDEST) build *.egg-info .pytest_cache
