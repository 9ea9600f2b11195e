# fastbin developer commands. Every target sets up .venv itself when missing.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q
STAMP   = $(VENV)/.installed-$(EXTRAS)

.PHONY: help venv test test-nojit test-fast demo bench bench-quick bench-torch clean

help:
	@echo "make test        create .venv, install .[test], run the test suite"
	@echo "make test-nojit  the same suite with NUMBA_DISABLE_JIT=1 (plain-Python kernels)"
	@echo "make demo        reproduce both notebooks with fastbin and the NumPy reference"
	@echo "make bench       run the benchmark suite, write bench-results/report.md and chart"
	@echo "make bench-quick every benchmark once with small sizes (CI)"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-test: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e '.[test]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e '.[test,bench]'
	touch $@

venv: $(VENV)/.installed-test

test: $(VENV)/.installed-test
	$(PY) -m pytest

test-nojit: $(VENV)/.installed-test
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis bench-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
