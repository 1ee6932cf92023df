# menet-tf: the entry points users know. Everything runs inside a local virtual environment
# (.venv, or VENV=...), created and filled on first use, so `make test` works on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data
SHARED ?= ../shared

.PHONY: help install test demo data-synthetic bench-data train-rain100h ablation clean

# Table I of the paper: the shallow ablation models, in the paper's row order.
ABLATION ?= ModelShallowNew ModelShallowNewEdgeFixed ModelShallowNewEdgeGradBalance \
	ModelShallowNewEdgeLossBalance ModelShallowNewEdgeGramGradBalance \
	ModelShallowNewEdgeGramLossBalance ModelShallowNewCaEdgeGramGradBalance \
	ModelShallowNewCaEdgeGramLossBalance
RAIN100H ?= $(DATA)/Rain100H
ABLATION_DATA ?= $(RAIN100H)
TRAIN_ARGS ?=

help:
	@echo "make install         create $(VENV) and install menet-tf with its test tools"
	@echo "make test            run the test suite (what CI runs)"
	@echo "make demo            train MENET-GB briefly on the synthetic set (made if missing)"
	@echo "make data-synthetic  build small synthetic heavy/light train and test sets in $(DATA)/"
	@echo "make bench-data      print the input pipeline's throughput (crops/s at batch 20)"
	@echo "make train-rain100h  train MENET-GB on $(RAIN100H) (train/ + test/) with the paper's settings"
	@echo "make ablation        train every Table I model on $(ABLATION_DATA) into runs/ablation/"

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

demo: $(STAMP)
	$(VENV)/bin/menet-tf train --config MENET-GB --epochs 2 --crop-size 64 --batch-size 10 \
		--out runs/demo --force

train-rain100h: $(STAMP)
	$(VENV)/bin/menet-tf train --config MENET-GB --data $(RAIN100H) --out runs/rain100h/MENET-GB $(TRAIN_ARGS)

ablation: $(STAMP)
	for model in $(ABLATION); do \
		$(VENV)/bin/menet-tf train --config $$model --data $(ABLATION_DATA) \
			--out runs/ablation/$$model $(TRAIN_ARGS) || exit 1; \
	done

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
