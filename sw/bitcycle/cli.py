"""``bitcycle`` command line. Each subcommand lives in its stage's package and is imported only
when it runs, so ``bitcycle --help`` stays fast and the board install needs no torch.

A subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from bitcycle import __version__
from bitcycle.errors import BitCycleError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("bitcycle.demo", "walking skeleton: train a W1A1 MLP, run FINN, golden model and RTL, check bit-exactness"),
    "bench": ("bitcycle.bench.cli", "run a benchmark (writes build/bench/NAME.json and a table)"),
    "train": ("bitcycle.train.cli", "train a zoo model with cyclic gradient precision (--grad-bits cosine:2-8x8)"),
    "run": ("bitcycle.driver.runcli", "train through the driver on the engine: --backend emu|sim|pynq (metrics like train)"),
    "bitstream": ("bitcycle.compile.vendor", "build the FPGA image with Vitis HLS / Vivado (needs the Xilinx tools on PATH)"),
    "export": ("bitcycle.compile.export_cmd", "trained checkpoint → QONNX (Brevitas export, integer input and logits)"),
    "compile": ("bitcycle.compile.compile_cmd", "checkpoint → FINN dataflow on BitCycle's engine → build/<model>/ (no vendor tools)"),
    "rtlsim": ("bitcycle.compile.rtlsim_cmd", "the compiled dataflow as one Verilator model: N test images, bit-exact check and cycles"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitcycle",
        description="Train binary neural networks with cyclic gradient precision and run them on a "
        "runtime bit-width FPGA engine.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n" + "\n".join(f"  {n:<10} {h}" for n, (_, h) in sorted(COMMANDS.items()))
        + "\n\n`bitcycle SUBCOMMAND --help` for the options of one.",
    )
    parser.add_argument("--version", action="version", version=f"bitcycle {__version__}")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="SUBCOMMAND", help="what to run")
    return parser


# Warnings that third-party libraries raise at import or export (optional CUDA kernels, ONNX
# opset notes, datatype roundings FINN performs on purpose) say nothing to a BitCycle user.
# BITCYCLE_WARNINGS=1 shows them.
QUIET_WARNINGS_FROM = r"(brevitas|qonnx|finn|torch|onnx|onnxscript|pynq|pynqutils)(\.|$)"


def _quiet_third_party_warnings() -> None:
    if os.environ.get("BITCYCLE_WARNINGS") != "1":
        warnings.filterwarnings("ignore", module=QUIET_WARNINGS_FROM)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_third_party_warnings()
    top = _top_parser()
    if not argv or argv[0].startswith("-"):
        top.parse_args(argv or ["--help"])
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown subcommand {name!r}; choose from: {', '.join(sorted(COMMANDS))}")
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"bitcycle {name}", description=help_text)
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except BitCycleError as err:
        print(f"bitcycle {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # the trainer's TrainingInterrupted says where it stopped and how to go on
        print(f"bitcycle {name}: interrupted" + (f": {err}" if str(err) else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
