# Two commands do everything on a fresh machine:
#   make run    set up .venv and run the default job (kexue run sentiment)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kexue-installed

.PHONY: setup run test bench bench-quick clean

setup: $(STAMP)

# A torch already importable by $(PYTHON) is reused (--system-site-packages); otherwise the CPU
# wheel torch==2.13.0 is installed before kexue, so pip never reaches for a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
	  if $(PYTHON) -c "import torch" 2>/dev/null; then $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else $(PYTHON) -m venv $(VENV); fi; \
	fi
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

run: setup
	$(BIN)/kexue run sentiment

# The DuIE sample (1.3 MB from PyPI) lets relation_extraction's default-data tests run; offline they skip.
test: setup
	-$(BIN)/kexue fetch duie
	$(BIN)/python -m pytest

# Every command BENCHMARKS.md names (hours on 2 cores); bench-quick: the few-minute ones.
bench: setup
	$(BIN)/python benchmarks/run_all.py

bench-quick: setup
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) build dist *.egg-info runs
