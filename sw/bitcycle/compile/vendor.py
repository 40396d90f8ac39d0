"""`bitcycle bitstream`: the vendor steps (Vitis HLS, Vivado) on a project from `bitcycle compile`.

It compiles the model first when ``build/<model>/`` is missing (or ``--recompile``), then checks
for ``vitis_hls`` and ``vivado``. Without them it stops with one line naming the missing tool and
the generated project (exit 2); with them it runs FINN's builder (``finn_build.py``: HLS synthesis,
IP stitching, bitfile of the inference dataflow) and the block design of the training engine
(``bd/bd.tcl``), leaving ``bitcycle.bit`` and ``bitcycle.hwh`` next to ``driver.json``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from bitcycle.errors import BitCycleError, ToolNotFound

VENDOR_TOOLS = ("vitis_hls", "vivado")


def require_tools(tools=VENDOR_TOOLS, project: str | None = None) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            where = f"; the generated project is in {project}" if project else ""
            raise ToolNotFound(
                f"{tool} not found on PATH: install Vitis/Vivado and source its settings64.sh{where}"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bitcycle.compile.commands import add_compile_arguments

    add_compile_arguments(parser)
    parser.add_argument("--recompile", action="store_true", help="regenerate build/<model>/ even if it exists")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bitcycle.compile.commands import resolve_compile_args, run_compile

    cfg = resolve_compile_args(args)
    out = Path(cfg.out)
    if args.recompile or not (out / "finn_build.py").is_file():  # a --stop-step run leaves no project
        run_compile(args)
    require_tools(project=str(out))
    for cmd, cwd in ((["vitis_hls", "-version"], out), ([sys.executable, "finn_build.py"], out),
                     (["vivado", "-mode", "batch", "-source", "bd.tcl"], out / "bd")):
        print("+", " ".join(cmd), f"(in {cwd})", flush=True)
        done = subprocess.run(cmd, cwd=cwd)
        if done.returncode != 0:
            raise BitCycleError(f"{cmd[0]} failed with exit code {done.returncode}; see its log in {cwd}")
    for f in ("bitcycle.bit", "bitcycle.hwh"):
        if not (out / f).is_file():
            raise BitCycleError(f"the vendor flow ended without {out / f}; see the Vivado log in {out / 'bd'}")
    print(f"bitstream: {out / 'bitcycle.bit'} (+ .hwh, driver.json)")
    return 0
