# halsvc — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SOCKET ?= $(if $(HALSVC_SOCKET),$(HALSVC_SOCKET),$(CURDIR)/run/halsvc.sock)
SIMDIR ?= run/sim
SHARED := $(wildcard ../shared/tools/check_layers.py)
PYTEST_ARGS ?=
# Two workers, a file each: the suite mostly waits on wires and simulators, and two at once is
# what the two vpcd reader slots allow without a card test queueing for one.
PYTEST_JOBS ?= 2

.PHONY: help setup-run setup-test run kiosk test lint typecheck layers micropython pytest bench soak fuzz-long install clean docs

help:
	@echo "make run      start the daemon on the simulated station (then: $(VENV)/bin/halctl status)"
	@echo "make kiosk    make run plus the browser bridge and the demo kiosk page (KIOSK_PORT=8765)"
	@echo "make test     ruff, mypy, layers, MicroPython protocol tests and pytest"
	@echo "make bench    benchmarks in bench/, one table of figures and targets"
	@echo "make soak     the whole station under load and faults (SOAK_MINUTES=30)"
	@echo "make install  package, units, udev rules (DESTDIR=, PREFIX=)"

setup-run:
	@PYTHON=$(PYTHON) VENV=$(VENV) sh tools/setup.sh run

setup-test:
	@PYTHON=$(PYTHON) VENV=$(VENV) sh tools/setup.sh test

# The daemon runs in the foreground on the simulated station; Ctrl-C stops it and every simulator.
run: setup-run
	@mkdir -p $(dir $(SOCKET)) $(SIMDIR)
	@echo "starting the simulated station and halsvc on $(SOCKET) (Ctrl-C stops everything)"
	@exec $(PY) -m simulators.station --dir $(SIMDIR) \
	  --ready-message "halsvc is ready. In a second terminal:  $(VENV)/bin/halctl status   (or: . $(VENV)/bin/activate; halctl status)" \
	  -- $(PY) -m halsvc --config $(SIMDIR)/halsvc.toml --socket $(SOCKET)

# make run plus the WebSocket bridge and the demo kiosk page on 127.0.0.1:$(KIOSK_PORT): the
# station's config with a [bridge] table added.
KIOSK_PORT ?= 8765
kiosk: setup-run
	@mkdir -p $(dir $(SOCKET)) $(SIMDIR)
	@exec $(PY) -m simulators.station --dir $(SIMDIR) \
	  --ready-message "halsvc is ready. The kiosk page:  chromium --app=\"http://127.0.0.1:$(KIOSK_PORT)/#token=\$$(cat $(SIMDIR)/state/kiosk.token)\"" \
	  -- sh -c 'printf "\n[bridge]\nenabled = true\nport = $(KIOSK_PORT)\n" | cat $(SIMDIR)/halsvc.toml - > $(SIMDIR)/kiosk.toml && exec $(PY) -m halsvc --config $(SIMDIR)/kiosk.toml --socket $(SOCKET)'

test: setup-test lint typecheck layers micropython pytest

lint:
	$(VENV)/bin/ruff check .

typecheck:
	$(VENV)/bin/mypy

layers:
	@if [ -n "$(SHARED)" ]; then $(PY) $(SHARED) && echo "layers: hold"; else echo "layers: ../shared not here, skipped"; fi

micropython:
	$(PY) tests/mpy_runner.py

pytest:
	$(PY) -m pytest $(if $(filter-out 0 1,$(PYTEST_JOBS)),-n $(PYTEST_JOBS) --dist loadfile) $(PYTEST_ARGS)

# Every bench/*.py but the soak, then one table of their BENCH-JSON figures (bench/benchjson.py).
bench: setup-test
	$(PY) bench/run_all.py

# The whole station under load, faults, bad input and daemon kills (bench/soak.py, tests/soaklib.py).
SOAK_MINUTES ?= 30
soak: setup-test
	SOAK_MINUTES=$(SOAK_MINUTES) $(PY) bench/soak.py

# Every hypothesis test for minutes (HALSVC_FUZZ_EXAMPLES each, default 20000); failing inputs
# land in tests/fuzz-examples/ (commit them).
fuzz-long: setup-test
	HALSVC_FUZZ_LONG=1 $(PY) -m pytest --timeout=0 $(sort $(wildcard tests/test_*fuzz*.py)) $(PYTEST_ARGS)

install:
	sh tools/install.sh

# docs/api.md from rpc.discover (tests/test_apidoc.py fails when it is stale).
docs:
	$(PY) -m halsvc.apidoc > docs/api.md

clean:
	rm -rf run build *.egg-info .mypy_cache .ruff_cache .hypothesis
