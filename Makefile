# Two commands do everything on a fresh machine:
#   make run    set up .venv and run the default job (kexue run sentiment)
#   make test   set up .venv and run the test suite
# and, day to day, make test-quick: the quick loop (every test file, the tests tests/slow.txt does not name).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kexue-installed

.PHONY: setup run test test-quick test-durations bench bench-quick clean

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

# pytest-xdist: one worker per core (tests/conftest.py keeps each on one thread); TEST_WORKERS=4 on 4 cores.
# worksteal: an idle worker takes tests queued on a busy one, so the few long CLI tests don't end the run alone.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

# The DuIE sample (1.3 MB from PyPI) lets relation_extraction's default-data tests run; offline they skip.
test: setup
	-$(BIN)/kexue fetch duie
	$(PYTEST)

test-quick: setup
	$(PYTEST) -m "not slow"

# Measure every test and rewrite tests/slow.txt (the full suite, once; commit the new list).
test-durations: setup
	-$(BIN)/kexue fetch duie
	-$(PYTEST) -q --junitxml=.durations.xml
	$(BIN)/python benchmarks/slow_tests.py .durations.xml --note "measured by make test-durations, $(TEST_WORKERS) workers"

# Every command BENCHMARKS.md names (hours on 2 cores); bench-quick: the few-minute ones.
bench: setup
	$(BIN)/python benchmarks/run_all.py

bench-quick: setup
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) build dist *.egg-info runs .durations.xml
