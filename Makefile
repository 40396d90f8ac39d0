# BitCycle — every entry point. `make help` lists them.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
# verilated.mk calls `python`: the venv's bin must lead PATH for every simulation.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONHASHSEED := 0
JOBS  ?= auto
MODEL ?= sfc

.PHONY: help setup demo test sim lint bench report clean bitstream compile export synth bench-memory bench-train regs bench-hw bench-driver bench-grad-error run wheel rtlsim bench-dataflow bench-peer

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

sim: $(VENV)/.bitcycle-setup  ## RTL testbenches: Verilator (+line/toggle coverage → build/sim/coverage.txt), then Icarus
	BITCYCLE_COVERAGE=1 SIM=verilator $(PY) -m pytest -n $(JOBS) -m rtl sim
	$(PY) tools/sim_coverage.py
	SIM=icarus $(PY) -m pytest -n $(JOBS) -m rtl sim

lint: $(VENV)/.bitcycle-setup  ## ruff (sw tests sim tools), mypy (golden, hwif, driver), Verilator -Wall of every hw/rtl file; make test runs it too
	$(PY) tools/lint.py

regs: $(VENV)/.bitcycle-setup  ## hw/regs/bitcycle.rdl → hw/rtl/bitcycle_regs*.sv, bitcycle_codes.svh + sw/bitcycle/hwif/regmap.py, codes.py
	$(PY) tools/gen_regs.py

bench-hw: $(VENV)/.bitcycle-setup  ## engine cycles per matrix vs bits (Verilator) → build/bench/hw.json + hw.md + plot
	$(PY) -m bitcycle.cli bench hw

synth: $(VENV)/.bitcycle-setup  ## Yosys synth_xilinx (xc7z020) of the engine at a few PE×SIMD → build/bench/synth.json + .md
	$(PY) -m bitcycle.cli bench synth

# MODEL: a zoo name (tfc/sfc/lfc/cnv), models/NAME.toml, a `bitcycle train` run directory, or a QONNX FILE.onnx
COMPILE_SRC = $(if $(filter %.onnx,$(MODEL)),--onnx $(MODEL),$(if $(wildcard $(MODEL)/model.pt),--checkpoint $(MODEL),--model $(MODEL)))
COMPILE_ARGS ?=

export: $(VENV)/.bitcycle-setup  ## MODEL → QONNX in build/<model>/qonnx.onnx
	$(PY) -m bitcycle.cli export $(COMPILE_SRC) $(COMPILE_ARGS)

compile: $(VENV)/.bitcycle-setup  ## MODEL → FINN dataflow + engine layers → build/<model>/ (stops before vendor tools)
	$(PY) -m bitcycle.cli compile $(COMPILE_SRC) $(COMPILE_ARGS)

# the compiled MODEL's whole dataflow as one Verilator model (layers, width converters, FIFOs)
RTLSIM_OUT = build/rtlsim/$(notdir $(basename $(patsubst %/,%,$(MODEL))))
rtlsim: $(VENV)/.bitcycle-setup  ## MODEL → compile → IMAGES=20 test images through the RTL → build/rtlsim/<model>/rtlsim.json
	$(PY) -m bitcycle.cli compile $(COMPILE_SRC) --out $(RTLSIM_OUT) $(COMPILE_ARGS)
	$(PY) -m bitcycle.cli rtlsim --build $(RTLSIM_OUT) --images $(or $(IMAGES),20)

bitstream: $(VENV)/.bitcycle-setup  ## FPGA image with Vitis HLS / Vivado (MODEL=...); exit 2 naming the missing tool
	$(PY) -m bitcycle.cli bitstream $(COMPILE_SRC) $(COMPILE_ARGS)

bench-train: $(VENV)/.bitcycle-setup  ## Fashion-MNIST, LFC MLP + CNV CNN × fp32/fixed:8/cosine:2-8x8 gradients + CycleBNN/CPT forward 2-6/3-8 → build/bench/train.json (~2.3 h on 2 cores, est.)
	$(PY) -m bitcycle.cli bench train

bench-peer: $(VENV)/.bitcycle-setup  ## bitcycle train cosine:2-8x2 / fp32 vs Brevitas' bnn_pynq SFC recipe, Fashion-MNIST 2 epochs → build/bench/peer.json + .md
	$(PY) -m bitcycle.cli bench peer

bench-memory: $(VENV)/.bitcycle-setup  ## training memory std vs 1-bit mode, zoo × batch 100/200, accuracy → build/bench/memory.json
	$(PY) -m bitcycle.cli bench memory --all --json build/bench/memory.json

bench-dataflow: $(VENV)/.bitcycle-setup  ## zoo dataflows at the pynq-z2 folding: rtlsim images/s vs estimate, LUT/BRAM, FINN stock beside → build/bench/dataflow.json
	$(PY) -m bitcycle.cli bench dataflow

bench-driver: $(VENV)/.bitcycle-setup  ## SFC training step via the driver (batch 64, pow2 scales): jobs/transfers/bytes per step, host CPU, board projection with its assumptions, vs PyTorch → build/bench/driver.json
	$(PY) -m bitcycle.cli bench driver

run: $(VENV)/.bitcycle-setup  ## train through the driver (BACKEND=emu|sim|pynq MODEL=sfc STEPS=440) → build/run/metrics.json
	$(PY) -m bitcycle.cli run --backend $(or $(BACKEND),emu) --model $(MODEL) --dataset digits --grad-bits cosine:2-8x4 --steps $(or $(STEPS),440) --out build/run

bench-grad-error: $(VENV)/.bitcycle-setup  ## quantised vs float weight gradient per layer (after bench-train: its CNN fixed:8 model) → build/bench/grad_error.json
	$(PY) -m bitcycle.cli bench grad-error

bench: bench-hw bench-driver bench-memory bench-train bench-grad-error  ## every benchmark (long: hours on 2 cores) → build/bench/*.json

wheel: $(VENV)/.bitcycle-setup  ## pure-Python wheel for the offline board install (numpy only) → dist/bitcycle-*.whl
	$(PY) tools/build_wheel.py --dist dist

report: $(VENV)/.bitcycle-setup  ## one page over every benchmark that ran → build/report/index.html + report.md
	$(PY) -m bitcycle.cli bench report

clean:  ## remove build outputs (keeps .venv)
	rm -rf build dist sim_build .pytest_cache .hypothesis
