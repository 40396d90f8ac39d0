"""``bitcycle bench NAME``: the dispatcher over the benchmarks of this package.

A benchmark module provides ``add_arguments(parser)`` and ``run(args) -> int`` and writes
``build/bench/NAME.json`` (every figure measured in that run) plus a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
BENCHES: dict[str, tuple[str, str]] = {
    "memory": ("bitcycle.bench.memory", "training memory, standard vs memory-efficient (1-bit sign(x)) mode"),
    "train": ("bitcycle.bench.train", "cyclic vs fixed vs FP32 gradient precision, beside CycleBNN's forward cycling, on Fashion-MNIST (LFC MLP, CNV CNN)"),
    "grad-error": ("bitcycle.bench.grad_error", "quantised vs float weight gradient of a trained model, per layer and setting"),
    "driver": ("bitcycle.bench.driver", "a training step through the driver: emu/sim time, RTL cycles, projected board time, vs PyTorch"),
    "hw": ("bitcycle.bench.hw", "engine RTL cycles per matrix vs bits in Verilator (mode, bits, M, K, N, PE, SIMD)"),
    "synth": ("bitcycle.bench.synth", "Yosys synth_xilinx (xc7) of the engine at a few PExSIMD: LUT/FF/BRAM per module, LUT levels"),
    "report": ("bitcycle.bench.report", "one page (build/report/index.html) over every build/bench/*.json, with plots"),
    "dataflow": ("bitcycle.bench.dataflow", "zoo dataflows at the pynq-z2 folding: rtlsim images/s vs estimate, LUT/BRAM, beside FINN's stock flow"),
    "peer": ("bitcycle.bench.peer", "bitcycle train (cosine 2-8 and fp32 gradients) beside Brevitas' bnn_pynq SFC recipe, interleaved"),
    "compile-lut": ("bitcycle.bench.compile_lut", "Yosys LUTs of generated BitSerialMVAU layers vs the compile flow's LUT model"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bench", choices=sorted(BENCHES), help="which benchmark")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="options of that benchmark")


def run(args: argparse.Namespace) -> int:
    module_name, help_text = BENCHES[args.bench]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"bitcycle bench {args.bench}", description=help_text)
    module.add_arguments(sub)
    return int(module.run(sub.parse_args(args.rest)) or 0)


if __name__ == "__main__":
    from bitcycle.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
