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

# The suite on the oldest versions setup.cfg declares: install_requires pinned exactly at its floors
# (.ci/floors.py), on the oldest Python python_requires allows (3.11), in a virtual environment of
# its own, with the `skops` extra pinned at its floor too. The test tools (pytest, hypothesis) are not
# what is judged and are left unpinned. CI runs OLDEST_TESTS, a subset chosen to stay within its time
# budget, which needs nothing more: the scikit-learn judge and estimator checks, the core pipelines,
# the input schema, the fast path and the store. `make test-oldest OLDEST_EXTRAS=test OLDEST_TESTS=`
# runs the whole suite (the test extra's other tools, mlflow, moto, ..., unpinned: their own floors
# pinned together are not co-installable).
PYTHON_OLDEST ?= python3.11
OLDEST        ?= .venv-oldest
OLDEST_EXTRAS ?= skops
OLDEST_TOOLS  ?= pytest hypothesis
OLDEST_TESTS  ?= tests/test_sklearn_judge.py tests/test_estimator_checks.py \
                 tests/test_pipeline_dropin.py tests/test_pipelines.py tests/test_stage.py \
                 tests/test_schema.py tests/test_fast.py tests/test_fast_row.py \
                 tests/test_fast_declines.py tests/test_fast_equivalence.py \
                 tests/test_persistence.py

$(OLDEST)/.installed: setup.cfg pyproject.toml .ci/floors.py
	$(PYTHON_OLDEST) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON_OLDEST) .ci/floors.py skops > $(OLDEST)/constraints.txt
	$(OLDEST)/bin/python -m pip install --quiet -c $(OLDEST)/constraints.txt -e ".[$(OLDEST_EXTRAS)]" \
	    $(OLDEST_TOOLS)
	touch $@

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pytest -q -p no:cacheprovider $(OLDEST_TESTS)

bench: $(VENV)/.installed-bench
	COLUMNS=$${COLUMNS:-200} $(BIN)/python -m benchmarks $(BENCH)

# docs/api.md, the API reference, generated from the numpydoc docstrings (tests check it is current);
# the `docs` extra brings numpydoc, whose parser reads them.
docs: $(VENV)/.installed-docs
	$(BIN)/python -m ml_toolbox._apidoc

clean:
	rm -rf $(VENV) $(OLDEST) build *.egg-info .pytest_cache
