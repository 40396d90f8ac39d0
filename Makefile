# BitCycle — every entry point. `make help` lists them.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
# verilated.mk calls `python`: the venv's bin must lead PATH for every simulation.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONHASHSEED := 0
JOBS  ?= auto
MODEL ?= sfc

.PHONY: help setup demo test test-fast sim lint bench clean bitstream compile synth bench-memory

help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# Re-checked whenever a requirement file changes (the script itself returns at once when nothing did).
$(VENV)/.bitcycle-setup: $(wildcard requirements/*.txt) pyproject.toml tools/setup.sh
	@bash tools/setup.sh

setup:  ## create .venv and install everything (idempotent)
	@bash tools/setup.sh

demo: $(VENV)/.bitcycle-setup  ## walking skeleton: train → QONNX → FINN → golden → RTL, bit-exact
	$(PY) -m bitcycle.demo

test: $(VENV)/.bitcycle-setup  ## the full suite: unit, property, integration, RTL (cocotb)
	$(PY) -m pytest -n $(JOBS) --dist loadgroup tests sim

sim: $(VENV)/.bitcycle-setup  ## RTL testbenches only (SIM=icarus for Icarus)
	$(PY) -m pytest -n $(JOBS) -m rtl sim

bitstream: $(VENV)/.bitcycle-setup  ## FPGA image with Vitis HLS / Vivado (MODEL=...)
	$(PY) -m bitcycle.cli bitstream --model $(MODEL)

bench-memory: $(VENV)/.bitcycle-setup  ## issue 5: training memory std vs 1-bit mode, zoo × batch 100/200, accuracy → build/bench/memory.json
	$(PY) -m bitcycle.cli bench memory --all --json build/bench/memory.json

clean:  ## remove build outputs (keeps .venv)
	rm -rf build sim_build .pytest_cache .hypothesis
