# moe-inspect: set-up, build, tests, demo, benchmarks.
# `make demo` and `make test` install the Debian packages they need when missing.

SWIFT        ?= swift
# libdnnl-dev: oneDNN headers for the shim that loads libdnnl.so.2 at run time for the f32 and bf16
# products (without them every product runs on OpenBLAS).
APT_PACKAGES := libhdf5-dev libopenblas-dev libdnnl-dev libpng-dev libcairo2-dev fonts-dejavu-core pkg-config
# Headless Chromium opens the report pages in the tests (they skip, saying so, without it).
TEST_APT_PACKAGES := chromium
RELEASE_FLAGS := -c release -Xswiftc -enable-testing
BIN          := .build/release/moe-inspect
DEMO_OUT     ?= demo-out
PYTHON       ?= python3
DEMO_STEPS   ?= 400
DEMO_TRAIN   ?= --steps $(DEMO_STEPS) --batch-size 8 --seq-len 128 --lr 3e-3 --schedule cosine --warmup 40 --save-every 100 --seed 1 -q
# OpenBLAS falls back to generic SSE3 kernels on CPUs it does not recognise (virtual machines);
# name the kernels the CPU runs so that test and benchmark processes use them too.
OPENBLAS_CORETYPE ?= $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo SkylakeX || (grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo Haswell))
ifneq ($(OPENBLAS_CORETYPE),)
export OPENBLAS_CORETYPE
endif

# The PyTorch package (python/) is tested in a virtual environment under the build folder,
# made once with torch, transformers and pytest from PyPI (PYTHON_VENV=... uses another).
PYTHON_VENV  ?= .build/venv
PY_PACKAGES  := torch transformers pytest numpy

.PHONY: all deps build test test-swift test-python demo bench fuzz fixtures format lint clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES) $(TEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build $(RELEASE_FLAGS) --product moe-inspect

# Tests run on the release build: the numeric tests are slow unoptimised.
test: test-swift test-python

test-swift: deps
	$(SWIFT) build $(RELEASE_FLAGS) --build-tests
	MOE_INSPECT_BIN=$(CURDIR)/$(BIN) $(SWIFT) test $(RELEASE_FLAGS) --skip-build

$(PYTHON_VENV)/.ready:
	@command -v python3 >/dev/null || { SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3 python3-venv; }
	python3 -m venv $(PYTHON_VENV)
	$(PYTHON_VENV)/bin/pip install -q --disable-pip-version-check $(PY_PACKAGES)
	touch $@

test-python: $(PYTHON_VENV)/.ready
	$(PYTHON_VENV)/bin/python -m pytest python/tests -q

demo: build
	@mkdir -p $(DEMO_OUT)
	@echo "== 1. what is in a checkpoint, and how coupled it is (tiny checkpoints written by transformers)"
	$(BIN) info fixtures/deepseek-v3-tiny
	$(BIN) erc fixtures/olmoe-tiny fixtures/mixtral-tiny fixtures/qwen2-moe-tiny fixtures/deepseek-v3-tiny \
	  --alpha 1 --alpha 0.5 --samples 8 --csv $(DEMO_OUT)/erc-fixtures.csv -q
	$(BIN) convert fixtures/olmoe-tiny $(DEMO_OUT)/olmoe-tiny.h5 --overwrite -q
	@echo "== 2. train a tiny OLMoE from scratch on the King James Bible, without and with ERC (about a minute each)"
	rm -rf $(DEMO_OUT)/moe $(DEMO_OUT)/moe-erc
	$(BIN) train --init fixtures/corpus/demo-config.json --data fixtures/corpus/kjv-train.txt --eval-data fixtures/corpus/kjv-eval.txt \
	  --out $(DEMO_OUT)/moe $(DEMO_TRAIN) --erc-weight 0
	$(BIN) train --init fixtures/corpus/demo-config.json --data fixtures/corpus/kjv-train.txt --eval-data fixtures/corpus/kjv-eval.txt \
	  --out $(DEMO_OUT)/moe-erc $(DEMO_TRAIN) --erc-weight 1 --erc-alpha 1
	@echo "== 3. the two runs compared, each run's series over training, and the curves"
	$(BIN) erc $(DEMO_OUT)/moe/step* $(DEMO_OUT)/moe-erc/step* --no-noise --alpha 1 -q
	$(BIN) compare $(DEMO_OUT)/moe/step$(DEMO_STEPS) $(DEMO_OUT)/moe-erc/step$(DEMO_STEPS) --labels "MoE,MoE+ERC" \
	  --logs $(DEMO_OUT)/moe/log.csv,$(DEMO_OUT)/moe-erc/log.csv --data fixtures/corpus/kjv-eval.txt --seq-len 128 \
	  --out $(DEMO_OUT)/compare --format png,pdf --overwrite -q
	$(BIN) plot $(DEMO_OUT)/moe/log.csv $(DEMO_OUT)/moe-erc/log.csv --labels "MoE,MoE+ERC" --out $(DEMO_OUT)/compare/training-curves.png
	$(BIN) report $(DEMO_OUT)/moe-erc/step* --out $(DEMO_OUT)/report-erc --alpha 1 --alpha 0.5 --format png,pdf,svg --overwrite -q
	@echo "== 4. routing on held-out text: does the router send each token to the experts that respond to it most?"
	$(BIN) routing $(DEMO_OUT)/moe/step$(DEMO_STEPS) $(DEMO_OUT)/moe-erc/step$(DEMO_STEPS) --data fixtures/corpus/kjv-eval.txt --seq-len 128 \
	  --out $(DEMO_OUT)/routing --overwrite -q
	@echo "demo: open $(DEMO_OUT)/compare/index.html, $(DEMO_OUT)/report-erc/index.html and $(DEMO_OUT)/routing/index.html"

bench: deps
	$(SWIFT) build $(RELEASE_FLAGS) --build-tests
	PYTHON=$(PYTHON) scripts/bench.sh

# libFuzzer over every parser of untrusted bytes (targets and seeds: fixtures/fuzz/), FUZZ_SECONDS in all.
FUZZ_SECONDS ?= 160
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Regenerates fixtures/ with the Python peers (needs torch, transformers, safetensors, h5py).
fixtures:
	$(PYTHON) fixtures/make_fixtures.py

# swift-format with the repository's .swift-format (the toolchain ships it).
format:
	$(SWIFT) format -i -r Sources Tests Package.swift
lint:
	$(SWIFT) format lint -r Sources Tests Package.swift

clean:
	rm -rf .build $(DEMO_OUT)
