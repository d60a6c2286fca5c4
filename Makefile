# Two commands do everything on a fresh machine:
#   make demo   - create .venv, install opsbot, run it on embedded defaults
#   make test   - create .venv, install opsbot with test dependencies, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench lint clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	@echo "installing opsbot (llama-cpp-python compiles from source the first time: ~6 min on 2 cores)"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/opsbot demo

# The suite starts a real Prometheus server (Debian's package) on loopback.
system-deps:
	@command -v prometheus >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus package (tests start a real server on loopback)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; } || \
	  echo "warning: could not install prometheus; its tests will be skipped"; }

test: install system-deps
	$(PY) -m pytest -q -p no:cacheprovider

bench: install
	$(VENV)/bin/opsbot bench ingest

lint: install
	$(VENV)/bin/ruff check bot agent detectors tools bench tests

clean:
	rm -rf $(VENV) .opsbot
