# menet-tf: the entry points users know. Everything runs inside a local virtual environment
# (.venv, or VENV=...), created and filled on first use, so `make test` works on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data
SHARED ?= ../shared

.PHONY: help install test demo data-synthetic bench-data train-rain100h ablation clean

help:
	@echo "make install         create $(VENV) and install menet-tf with its test tools"
	@echo "make test            run the test suite (what CI runs)"
	@echo "make demo            build the synthetic set and run a short training on it"
	@echo "make data-synthetic  build small synthetic heavy/light train and test sets in $(DATA)/"
	@echo "make bench-data      print the input pipeline's throughput (crops/s at batch 20)"

$(STAMP): setup.py setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	MENET_TF1_REFERENCE=$${MENET_TF1_REFERENCE:-$(SHARED)/reference/authors_tf1} \
	MENET_REAL_DATA=$${MENET_REAL_DATA:-$(SHARED)/datasets/Rain100L} \
	$(PY) -m pytest -q tests

data-synthetic: $(STAMP)
	$(VENV)/bin/menet-tf synth --preset heavy --out $(DATA)/synthetic/heavy --seed 0
	$(VENV)/bin/menet-tf synth --preset light --out $(DATA)/synthetic/light --seed 0

bench-data: $(STAMP)
	$(PY) benchmarks/bench_data.py

clean:
	rm -rf build dist *.egg-info .pytest_cache

# ---- data (issue 3) --------------------------------------------------------------------------
REAL_DATA ?= $(SHARED)/datasets/Rain100L

.PHONY: test-data data-check-real bench-data-real

test-data: $(STAMP)
	MENET_REAL_DATA=$${MENET_REAL_DATA:-$(REAL_DATA)} $(PY) -m pytest -q tests/test_data_*.py

data-check-real: $(STAMP)
	$(VENV)/bin/menet-tf data check $${MENET_REAL_DATA:-$(REAL_DATA)}

bench-data-real: $(STAMP)
	$(PY) benchmarks/bench_data.py $${MENET_REAL_DATA:-$(REAL_DATA)}/train
