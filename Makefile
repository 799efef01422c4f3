# Two commands work on a fresh clone: `make demo` and `make test`. Both set up .venv from requirements.lock and
# requirements-nodeps.lock (packages installed without their declared dependencies).
# `make test` runs every test and every doctest (what CI runs); `make test-fast` leaves out the tests marked slow.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCKS := requirements.lock requirements-nodeps.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCKS) pyproject.toml | cksum | cut -d' ' -f1)
DEEPFAKE_DATA ?= ../shared/data/faces140k
export DEEPFAKE_DATA
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test test-fast lint bench lock clean

setup: $(STAMP)

$(STAMP): $(LOCKS) pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	bash scripts/demo.sh

# pyproject.toml's pytest settings add the doctests of src to the tests.
PYTEST := $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	bash scripts/ensure-chromium.sh
	$(PYTEST) --durations=15

test-fast: $(STAMP)
	$(BIN)/lint-imports
	$(PYTEST) -m "not slow" --durations=10

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py --data $(DEEPFAKE_DATA)

lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | sed 's/+cpu$$//' | grep -vixF -f requirements-nodeps.lock > requirements.lock.new
	@echo "review requirements.lock.new, then move it over requirements.lock (keep the header lines)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
