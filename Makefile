# menet-tf: the entry points users know. Everything runs inside a local virtual environment
# (.venv, or VENV=...), created and filled on first use, so `make test` works on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data
SHARED ?= ../shared

.PHONY: help install test test-fast demo data-synthetic data-heavy bench-data train-rain100h ablation clean

TRAIN_ARGS ?=

help:
	@echo "make install         create $(VENV) and install menet-tf with its test tools and extras"
	@echo "make test            run the whole test suite (what CI runs)"
	@echo "make test-fast       the fast tier, for the inner loop: all but the tests marked slow"
	@echo "                     (authors' graphs at 20x224x224, multi-process, SIGKILL-and-resume)"
	@echo "make test-data       the data tests alone, on the real set $(REAL_DATA) (MENET_REAL_DATA=...)"
	@echo "make demo            de-rain examples/ with the bundled model (side by side, PSNR) into"
	@echo "                     runs/demo/derained, then train MENET-GB briefly on the synthetic set"
	@echo "make data-synthetic  build small synthetic heavy/light train and test sets in $(DATA)/"
	@echo "make data-heavy      RainTrainH-sized heavy rain: RainTrainL's 200 backgrounds x 9 (train)"
	@echo "                     and Rain100L's 100 test backgrounds (test) -> $(DATA)/heavy"
	@echo "make bench-data      print the input pipeline's throughput (crops/s at batch 20)"
	@echo "make data-check-real check the real set $(REAL_DATA): its pairs, layout, broken files"
	@echo "make bench-data-real the input pipeline's throughput on its training set"
	@echo "make train-rain100h  MENET-GB on $(RAIN100H) (train/ + test/), paper's settings, evaluated"
	@echo "make train-rain100l  the same on $(RAIN100L)"
	@echo "make train-heavy     fine-tune the bundled MENET-GB on $(HEAVY_DATA) (make data-heavy) into"
	@echo "                     $(HEAVY_RUN); re-run to continue (TRAIN_ARGS=\"--time-budget 2h\" stops in time)"
	@echo "make ablation        Table I (8 models) on $(ABLATION_DATA): runs, table.md, Fig. 8/9"
	@echo "make table2          Table II (MENET-GB/LB shallow and deep) on $(TABLE_DATA)"
	@echo "make table4          Table IV (MSE, MSE+VGG with VGG_WEIGHTS=FILE, MSE+Edge) on $(TABLE_DATA)"
	@echo "make ablation-quick  Table I in CPU-sized form on $(QUICK_DATA) (< 30 min on 2 cores)"
	@echo "                     every table target resumes when re-run; TRAIN_ARGS=... is passed on"
	@echo "make derain          de-rain PHOTOS=folder with MODEL=run folder into PHOTOS-derained/"
	@echo "make export          MODEL as SavedModel and TFLite (float, dynamic) in exports/"
	@echo "make derain-example  train briefly on $(QUICK_DATA), de-rain one test image side by side"
	@echo "make derain-figures  README figures: tiles vs whole, modes, s/MP, exports (JSON)"
	@echo "make compare-authors run the authors' released graphs beside the port (AUTHORS=clone)"
	@echo "make bench           speed of the port; make bench-authors: interleaved with the authors' graph"
	@echo "make bench-quick     small sizes, a first look in about a minute"
	@echo "make update-model    bundle $(BUNDLE_SOURCE) as $(BUNDLE_NAME): weights, scores, card"
	@echo "make update-heavy-model  the same for menet-gb-heavy (from $(HEAVY_SOURCE))"
	@echo "make demo-picture    the README's picture: astronaut-heavy.jpg de-rained by --model heavy"
	@echo "make gpu-check       on a GPU, in < 5 min: XLA/mixed-precision training steps, inference"
	@echo "                     fp32/fp16/bf16, 8 MP tiling, 200 steps, the GPU tests -> $(GPU_CHECK_OUT)"
	@echo "                     (without a GPU: one line, exit 0)"
	@echo "make clean           remove build leftovers: build/, dist/, *.egg-info, .pytest_cache"

$(STAMP): setup.py setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,serve,openvino,video]'
	touch $(STAMP)

install: $(STAMP)

# ../shared (the authors' reference results and graphs, the real data): tests needing a missing
# part are skipped, and the run ends with one line saying which and why.
TEST_ENV = MENET_TF1_REFERENCE=$${MENET_TF1_REFERENCE:-$(SHARED)/reference/authors_tf1} \
	MENET_AUTHORS_GRAPHS=$${MENET_AUTHORS_GRAPHS:-$(SHARED)/reference/authors_graphs} \
	MENET_SPEC=$${MENET_SPEC:-$(SHARED)/reference/MENET_SPEC.md} \
	MENET_REAL_DATA=$${MENET_REAL_DATA:-$(SHARED)/datasets/Rain100L}

# One test process per core (at most 4), a test file per process at a time (module fixtures
# are built once); PYTEST_ARGS=... adds options, e.g. PYTEST_ARGS="-n 0 -x" for one process.
PYTEST = $(TEST_ENV) $(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadfile $(PYTEST_ARGS)

test: $(STAMP)
	$(PYTEST) --durations=15 tests

test-fast: $(STAMP)
	$(PYTEST) -m "not slow" --durations=10 tests

data-synthetic: $(STAMP)
	$(VENV)/bin/menet-tf synth --preset heavy --out $(DATA)/synthetic/heavy --seed 0
	$(VENV)/bin/menet-tf synth --preset light --out $(DATA)/synthetic/light --seed 0

# Heavy rain like RainTrainH/Rain100H (docs/rain.md): 200 clean RainTrainL backgrounds x 9 rains
# = 1800 training pairs, and the 100 clean Rain100L test backgrounds (Rain100H's) x 1 for test.
# A set already there is kept (synth refuses to overwrite it): SYNTH_ARGS=--force re-renders it.
HEAVY_BACKGROUNDS ?= $(SHARED)/datasets/Rain100L
SYNTH_JOBS ?= 2
SYNTH_ARGS ?=

data-heavy: $(STAMP)
	$(VENV)/bin/menet-tf synth --preset heavy --seed 0 --out $(DATA)/heavy \
		--clean-dir $(HEAVY_BACKGROUNDS)/train/norain --variants 9 \
		--test-clean-dir $(HEAVY_BACKGROUNDS)/test/norain --jobs $(SYNTH_JOBS) $(SYNTH_ARGS)

# The bundled models on the example photos, each on its rain: the light examples with --model
# light, astronaut-heavy.jpg with --model heavy (rainy | de-rained side by side, PSNR where
# examples/clean has the clean image), then two short epochs of training on the synthetic set.
# --force replaces only what the demo itself wrote: runs/demo/derained*, and the run in runs/demo.
demo: $(STAMP)
	$(VENV)/bin/menet-tf derain examples/cat.png examples/coffee.jpg examples/rocket.jpg \
		-o runs/demo/derained --model light --compare --clean-dir examples/clean --quiet --force
	$(VENV)/bin/menet-tf derain examples/astronaut-heavy.jpg -o runs/demo/derained-heavy \
		--model heavy --compare --quiet --force
	$(VENV)/bin/menet-tf train --config MENET-GB --epochs 2 --crop-size 64 --batch-size 10 \
		--out runs/demo --force

bench-data: $(STAMP)
	$(PY) benchmarks/bench_data.py

clean:
	rm -rf build dist *.egg-info .pytest_cache

# ---- data (issue 3) --------------------------------------------------------------------------
REAL_DATA ?= $(SHARED)/datasets/Rain100L

.PHONY: test-data data-check-real bench-data-real

test-data: $(STAMP)
	MENET_REAL_DATA=$${MENET_REAL_DATA:-$(REAL_DATA)} $(PY) -m pytest -q tests/data

data-check-real: $(STAMP)
	$(VENV)/bin/menet-tf data check $${MENET_REAL_DATA:-$(REAL_DATA)}

bench-data-real: $(STAMP)
	$(PY) benchmarks/bench_data.py $${MENET_REAL_DATA:-$(REAL_DATA)}/train

# Fine-tuning the bundled MENET-GB (trained on RainTrainL) on heavy rain (make data-heavy): a fresh
# Adam at 5e-4, mixed bfloat16 (fast on CPUs with AVX512_BF16 or AMX, and on recent GPUs), 128x128
# crops for a CPU, 6000 steps (5.3 epochs of the 1800 pairs): the run that made the bundled
# menet-gb-heavy. Re-running the same command continues the run; a finished run is reported as
# such. HEAVY_ARGS replaces the settings (changing them later is refused: --force starts over),
# e.g. HEAVY_ARGS="--crop-size 224 --batch-size 20 --epochs 60 --lr 5e-4 --precision bf16" on a
# GPU; TRAIN_ARGS="--time-budget 2h" stops after two hours with the state saved.
HEAVY_DATA ?= $(DATA)/heavy
HEAVY_RUN ?= runs/menet-gb-heavy
HEAVY_INIT ?= menet-gb-rain100l
HEAVY_ARGS ?= --crop-size 128 --batch-size 16 --steps 6000 --lr 5e-4 --precision bf16 \
	--save-every-steps 200

.PHONY: train-heavy
train-heavy: $(STAMP)
	@test -d $(HEAVY_DATA)/train || { echo "$(HEAVY_DATA)/train: missing; run make data-heavy first" >&2; exit 1; }
	$(VENV)/bin/menet-tf train --config MENET-GB --init $(HEAVY_INIT) --data $(HEAVY_DATA) \
		-o $(HEAVY_RUN) $(HEAVY_ARGS) $(TRAIN_ARGS)

# ---- experiments (issue 6) -------------------------------------------------------------------
# The paper's tables: `menet-tf table` trains what is missing, resumes what is half done,
# evaluates every model and writes table.md/csv and Fig. 8/9 into the runs folder. Missing data
# stop it at once, saying which set to get, where to put it and how to check it.
RAIN100H ?= $(DATA)/Rain100H
RAIN100L ?= $(DATA)/Rain100L
ABLATION_DATA ?= $(RAIN100H)
TABLE_DATA ?= $(RAIN100H)
QUICK_DATA ?= $(SHARED)/datasets/Rain100L
VGG_WEIGHTS ?=
TABLE := $(VENV)/bin/menet-tf table
run_name = $(notdir $(patsubst %/,%,$(1)))

.PHONY: train-rain100l table2 table4 ablation-quick

train-rain100h: $(STAMP)
	$(TABLE) menet --data $(RAIN100H) -o runs/menet/$(call run_name,$(RAIN100H)) $(TRAIN_ARGS)

train-rain100l: $(STAMP)
	$(TABLE) menet --data $(RAIN100L) -o runs/menet/$(call run_name,$(RAIN100L)) $(TRAIN_ARGS)

ablation: $(STAMP)
	$(TABLE) table1 --data $(ABLATION_DATA) -o runs/table1/$(call run_name,$(ABLATION_DATA)) $(TRAIN_ARGS)

table2: $(STAMP)
	$(TABLE) table2 --data $(TABLE_DATA) -o runs/table2/$(call run_name,$(TABLE_DATA)) $(TRAIN_ARGS)

table4: $(STAMP)
	$(TABLE) table4 --data $(TABLE_DATA) -o runs/table4/$(call run_name,$(TABLE_DATA)) \
		$(if $(VGG_WEIGHTS),--vgg-weights $(VGG_WEIGHTS)) $(TRAIN_ARGS)

ablation-quick: $(STAMP)
	$(TABLE) table1 --quick --data $(QUICK_DATA) -o runs/table1-quick $(TRAIN_ARGS)

# ---- derain / export (issue 7)
MODEL ?= runs/demo
PHOTOS ?= photos
DERAIN_ARGS ?=
EXAMPLE_RUN ?= runs/derain-example

.PHONY: derain export derain-example derain-figures

derain: $(STAMP)
	$(VENV)/bin/menet-tf derain $(PHOTOS) -o $(PHOTOS)-derained --model $(MODEL) --recursive \
		--compare $(DERAIN_ARGS)

export: $(STAMP)
	$(VENV)/bin/menet-tf export --model $(MODEL) -o exports/savedmodel --force
	$(VENV)/bin/menet-tf export --model $(MODEL) -o exports/tflite --format tflite --size 512 512 \
		--force
	$(VENV)/bin/menet-tf export --model $(MODEL) -o exports/tflite-dynamic --format tflite \
		--size 512 512 --quantize dynamic --force

# What two epochs of training give: MENET-GB trained on RainTrainL (96x96 crops, a few minutes on
# a CPU), then one Rain100L test image de-rained with --compare (not committed: the data sets'
# images are not menet-tf's to distribute; the README's picture comes from `make demo`).
derain-example: $(STAMP)
	$(VENV)/bin/menet-tf train --config MENET-GB --data $(QUICK_DATA) --epochs 2 --crop-size 96 \
		--out $(EXAMPLE_RUN) --force
	$(VENV)/bin/menet-tf derain $(QUICK_DATA)/test/rain/norain-1.png -o $(EXAMPLE_RUN)/example \
		--model $(EXAMPLE_RUN) --compare --force

derain-figures: $(STAMP)
	$(PY) benchmarks/derain_figures.py --model $(MODEL) --data $(QUICK_DATA) \
		--out $(MODEL)/derain_figures.json

# ---- compare with the authors' code (issue 9) ------------------------------------------------
# AUTHORS: a clone of github SumiHui/MENET (trained checkpoints) or a folder like authors_graphs/
# (graphs + checkpoint indexes: seeded weights). COMPARE_ARGS: e.g. --variant MENET-GB --data DIR.
AUTHORS ?= $(SHARED)/reference/authors_graphs
COMPARE_OUT ?= runs/compare-authors
COMPARE_ARGS ?=

.PHONY: compare-authors

compare-authors: $(STAMP)
	$(VENV)/bin/menet-tf compare-authors $(AUTHORS) --out $(COMPARE_OUT) $(COMPARE_ARGS)

# ---- speed (issue 8) -------------------------------------------------------------------------
# `make bench-authors` is how every speed figure of the README is measured: the port and the
# authors' MENET-GB graph in one process, interleaved; run it on a quiet machine. AUTHORS is the
# folder of the authors' released graphs (set in the issue-9 section above). BENCH_ARGS: e.g.
# --jit-compile on, --precision bf16, --backend openvino, --repeats 9.
BENCH_OUT ?= runs/bench
BENCH_ARGS ?=

.PHONY: bench bench-authors bench-quick

bench: $(STAMP)
	$(VENV)/bin/menet-tf bench --out $(BENCH_OUT)/bench.json --force $(BENCH_ARGS)

bench-authors: $(STAMP)
	$(VENV)/bin/menet-tf bench --authors $(AUTHORS) --out $(BENCH_OUT)/bench-authors.json --force $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(VENV)/bin/menet-tf bench --quick --out $(BENCH_OUT)/bench-quick.json --force $(BENCH_ARGS)

# ---- bundled models ----------------------------------------------------------------------------
# Replacing a bundled model is a data change made by one command: the weights (no optimizer) go
# into menet_tf/bundled/, scored on Rain100L (three protocols, five fixed images) and on the heavy
# test set of make data-heavy (Rain100L's test backgrounds under calibrated heavy rain); the
# registry entry, docs/models/NAME.md and, for the default model, the README's scores and picture
# (docs/demo.png, made as `make demo` makes it) are rewritten. `--model light|heavy` names the two.
# A longer-trained model dropped into $(SHARED)/models/NAME/ replaces one with the same command.
DEFAULT_MODEL ?= menet-gb-heavy
BUNDLE_NAME ?= menet-gb-rain100l
BUNDLE_SOURCE ?= $(SHARED)/models/$(BUNDLE_NAME)/model.keras
BUNDLE_DATA ?= $(SHARED)/datasets/Rain100L
BUNDLE_RAIN ?= light
BUNDLE_ARGS ?=
HEAVY_SOURCE ?= $(if $(wildcard $(SHARED)/models/menet-gb-heavy/model.keras),$(SHARED)/models/menet-gb-heavy/model.keras,$(HEAVY_RUN))

.PHONY: update-model update-heavy-model

$(HEAVY_DATA)/synth.json:
	$(MAKE) --no-print-directory data-heavy

update-model: $(STAMP) $(HEAVY_DATA)/synth.json
	$(VENV)/bin/menet-tf models add $(BUNDLE_SOURCE) --name $(BUNDLE_NAME) --data $(BUNDLE_DATA) \
		--rain $(BUNDLE_RAIN) --heavy-data $(HEAVY_DATA) \
		$(if $(filter $(BUNDLE_NAME),$(DEFAULT_MODEL)),--default) $(BUNDLE_ARGS)
	$(if $(filter $(BUNDLE_NAME),$(DEFAULT_MODEL)),$(MAKE) --no-print-directory demo-picture)

update-heavy-model: $(STAMP) $(HEAVY_DATA)/synth.json
	$(MAKE) --no-print-directory update-model BUNDLE_NAME=menet-gb-heavy \
		BUNDLE_SOURCE=$(HEAVY_SOURCE) BUNDLE_RAIN=heavy BUNDLE_ARGS="--train-data $(HEAVY_DATA)"

# The README's picture: the heavy example de-rained by the heavy model, as `make demo` does it.
demo-picture: $(STAMP)
	$(VENV)/bin/menet-tf derain examples/astronaut-heavy.jpg -o runs/update-model --model heavy \
		--format png --compare --quiet --force
	cp runs/update-model/astronaut-heavy_compare.png docs/.demo.png.partial && \
		mv docs/.demo.png.partial docs/demo.png

# ---- GPU check (issue 16) --------------------------------------------------------------------
# Does menet-tf work on this GPU, and how fast: one JSON (docs/speed.md, "GPU check"). Where an
# NVIDIA driver is installed, the `gpu` extra (TensorFlow's CUDA libraries, pytest) is installed
# into $(VENV) once; elsewhere nothing is downloaded and the check says in one line that there is
# no GPU. GPU_CHECK_ARGS: e.g. --budget 240, --jit-compile off.
GPU_CHECK_OUT ?= runs/gpu-check.json
GPU_CHECK_ARGS ?=
GPU_STAMP := $(VENV)/.installed-gpu

.PHONY: gpu-check

$(GPU_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[gpu]'
	touch $(GPU_STAMP)

gpu-check: $(STAMP)
	@if command -v nvidia-smi >/dev/null 2>&1; then $(MAKE) --no-print-directory $(GPU_STAMP); fi
	$(PY) benchmarks/gpu_check.py -o $(GPU_CHECK_OUT) --force $(GPU_CHECK_ARGS)
