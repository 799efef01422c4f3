# Two commands work on a fresh clone: `make demo` and `make test`. Both set up .venv from requirements.lock.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
DEEPFAKE_DATA ?= ../shared/data/faces140k
export DEEPFAKE_DATA
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint bench lock clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	bash scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py --data $(DEEPFAKE_DATA)

lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | sed 's/+cpu$$//' > requirements.lock.new
	@echo "review requirements.lock.new, then move it over requirements.lock (keep the header lines)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
