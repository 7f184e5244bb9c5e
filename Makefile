# Two commands on a fresh machine: `make reproduce` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= quick

.PHONY: install test reproduce bench gpu-check lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision first and exactly pinned: they lie on this machine's disk.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# cpu (the converged study) fills the committed results/ and figures/; any other profile, the
# default quick included, writes into out/<profile>/ and never touches them
reproduce: $(STAMP)
	$(PY) -m vscr_core.cli reproduce --profile $(PROFILE)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# On the GPU machine: its own python3 (torch, torchvision), no venv there, nothing to install.
# Writes $OUT/gpu_check.json when OUT is set.
gpu-check:
	PYTHONPATH=. python3 benchmarks/gpu_check.py

lint: $(STAMP)
	$(PY) -m ruff check vscr_core tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
