# The two commands: `make run` (set up, then the default pipeline) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install data browser run quick test lint clean

install: $(STAMP) data

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

data:
	@scripts/ensure_dataset.sh

browser:
	@scripts/ensure_browser.sh

run: install
	$(BIN)/edge-opt run configs/default.yaml

quick: install
	$(BIN)/edge-opt run configs/quick.yaml

test: install browser
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts examples
	$(BIN)/ruff format --check src tests benchmarks scripts examples

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache src/*.egg-info
