# Two commands do everything on a fresh machine:
#   make demo   - create .venv, install opsbot, run it on embedded defaults
#   make test   - create .venv, install opsbot with test dependencies, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	@echo "installing opsbot (llama-cpp-python compiles from source the first time: ~6 min on 2 cores)"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/opsbot demo

test: install
	$(PY) -m pytest -q -p no:cacheprovider

bench: install
	$(VENV)/bin/opsbot bench ingest

lint: install
	$(VENV)/bin/ruff check bot agent detectors tools bench tests

clean:
	rm -rf $(VENV) .opsbot
