# Set-up-from-nothing entry points. Needs only python3 (>= 3.10) and make.
# GPU users: create the venv yourself, install the torch build for your CUDA, then `pip install -e '.[test,data]'`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
EXTRAS ?= test,data,protein,docs,tensorboard
OUT    ?= runs/demo
STAMP  := $(VENV)/.gaugeflow-installed

.PHONY: demo lint test test-fast docs docs-serve bench gmm real clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	@touch $@

## The main job: a small higher-gauge flow on world-cities data on S^2; samples, test NLL and figures in $(OUT)
demo: $(STAMP)
	$(BIN)/gaugeflow train --config experiments/demo.toml --out $(OUT) --overwrite --threads 1
	$(BIN)/gaugeflow evaluate $(OUT) --threads 1
	$(BIN)/gaugeflow plot $(OUT) --threads 1

## The import-layer contracts of pyproject.toml ([tool.importlinter]: no cycles, library never imports the app)
lint: $(STAMP)
	.ci/lint-imports $(BIN)/lint-imports

## The whole test suite (slow tests included), in parallel on the available cores
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --durations=15 -q

## Everything but the tests marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n auto -q -m "not slow"

## The documentation site into site/ (mkdocs-material + mkdocstrings; any warning or broken link fails)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## Serve the site with live reload at http://127.0.0.1:8000
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)" -e ".[bench]"
	$(BIN)/python experiments/benchmarks/run_all.py

gmm: $(STAMP)
	$(BIN)/gaugeflow reproduce gmm

real: $(STAMP)
	$(BIN)/python experiments/real/run.py

clean:
	rm -rf $(VENV) runs site .pytest_cache .hypothesis
