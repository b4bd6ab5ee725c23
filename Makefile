# Everything installs into .venv from the package registries; only python3 is needed beforehand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
DATA ?= .data
HOST ?= 127.0.0.1
PORT ?= 8000

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser run run-cluster test check lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# pinned first: this torch is a CPU build; an unpinned one pulls a multi-GB CUDA build. The
	# package itself asks only for torch>=2.1, and only in its transformers extra (all has it).
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,all]'
	touch $(STAMP)

install: $(STAMP) browser  ## everything make test needs (the demo and benchmarks need the venv only)

# The console's browser tests drive Debian's chromium through Playwright's executable_path
# (Playwright's own browser download is never used). Elsewhere: set EMBEDSWITCH_TEST_CHROMIUM.
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -n "$$EMBEDSWITCH_TEST_CHROMIUM" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  ( $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium ) \
	    || echo "could not install chromium; the browser tests skip outside CI (and fail in CI)"; \
	else echo "no chromium: install it or set EMBEDSWITCH_TEST_CHROMIUM; the browser tests skip outside CI"; fi

run: $(STAMP)  ## serve the scifact demo on the embedded default
	HF_HUB_OFFLINE=1 $(BIN)/embedswitch demo --data $(DATA) --host $(HOST) --port $(PORT)

run-cluster: $(STAMP)  ## the scifact demo on PostgreSQL + pgvector, served by two processes
	HF_HUB_OFFLINE=1 $(BIN)/embedswitch cluster --data $(DATA)/cluster --host $(HOST) --port $$(( $(PORT) + 1 ))

test: install  ## the whole suite
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=15

lint: $(STAMP)  ## ruff, mypy and the layer contracts of .importlinter
	$(BIN)/ruff check embedswitch tests bench
	$(BIN)/ruff format --check embedswitch tests bench
	$(BIN)/mypy embedswitch
	$(BIN)/lint-imports

check: lint test  ## what CI runs, plus lint

bench: $(STAMP)  ## benchmarks; results in bench/results/*.json
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache .hypothesis
