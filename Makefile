# analogeq: two commands do everything on a fresh Debian machine.
#   make demo   set up (ngspice, .venv), then train the bundled default on ngspice
#   make test   set up, then lint and run the test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
NGSPICE_LIB := $(shell ls /usr/lib/*/libngspice.so /usr/lib/libngspice.so 2>/dev/null | head -n 1)

.PHONY: demo test lint setup ngspice venv bench experiments netlists notebooks clean

demo: setup
	$(PY) -m analogeq demo

test: setup lint
	$(PY) -m pytest -q
	ANALOGEQ_NB_BUDGET=small $(PY) -m pytest --nbmake examples/ -q

# Execute the example notebooks in the small CI budget (make test does this too).
notebooks: setup
	ANALOGEQ_NB_BUDGET=small $(PY) -m pytest --nbmake examples/ -q

lint: setup
	$(VENV)/bin/ruff check analogeq digital tests benchmarks examples/nbutils.py

setup: ngspice $(STAMP)

# Install ngspice and the shared library PySpice loads, only when missing.
ngspice:
	@if command -v ngspice >/dev/null 2>&1 && [ -n "$(NGSPICE_LIB)" ]; then \
	  echo "ngspice: found $$(command -v ngspice), $(NGSPICE_LIB)"; \
	else \
	  echo "ngspice: installing ngspice libngspice0 libngspice0-dev"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ngspice libngspice0 libngspice0-dev; \
	fi

$(STAMP): setup.cfg pyproject.toml
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

bench: setup
	$(PY) -m benchmarks.run --quick

# Long runs behind RESULTS.md (not CI): EP error vs beta, the ngspice demo run,
# the splitting experiment and its gradient checks, Fashion-MNIST (numpy training, ngspice
# re-measure), the Kendall-size block trained on ngspice for one epoch of all 60,000
# images and on NumPy for its 25 (re-measured on ngspice, diagnosed), and the digital
# baselines on the same pixels. OPENBLAS_NUM_THREADS=1:
# several NumPy jobs on a small machine otherwise spin BLAS threads against each other.
experiments: setup
	$(PY) -m analogeq beta-sweep --sizes 64,32,10
	$(PY) -m analogeq beta-sweep --sizes 16,12,8,4
	$(PY) -m analogeq train examples/configs/digits_ffebm.toml --out runs/digits_ffebm-ngspice
	OPENBLAS_NUM_THREADS=1 $(PY) -m analogeq splitting --backend numpy
	$(PY) -m analogeq gradcheck examples/configs/splitting.toml --backend numpy
	$(PY) -m analogeq gradcheck examples/configs/splitting.toml --split 4 --backend numpy
	@[ -d /usr/share/datasets/fashion-mnist ] || $(SUDO) apt-get install -y -qq dataset-fashion-mnist
	$(PY) -m analogeq train examples/configs/fashion_ffebm.toml --out runs/fashion_ffebm-numpy
	$(PY) -m analogeq evaluate runs/fashion_ffebm-numpy --backend ngspice
	OPENBLAS_NUM_THREADS=1 $(PY) -m analogeq train examples/configs/kendall_fashion.toml --backend ngspice --epochs 1 --out runs/kendall_fashion-ngspice-1ep
	OPENBLAS_NUM_THREADS=1 $(PY) -m analogeq train examples/configs/kendall_fashion.toml --out runs/kendall_fashion-numpy
	$(PY) -m analogeq evaluate runs/kendall_fashion-numpy --backend ngspice
	$(PY) -m analogeq diagnose runs/kendall_fashion-numpy --samples 500
	OPENBLAS_NUM_THREADS=1 $(PY) -m analogeq baselines --dataset fashion-mnist --out runs/baselines-fashion.md

# Regenerate the reference netlists of the example configs on purpose (a test fails on any
# difference between netlists/ and what the code emits).
netlists: setup
	$(PY) -m analogeq netlist --reference --out netlists

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
