"""A stand-in for Vivado that executes the project's generated Tcl in real ``tclsh``.

Every Vivado command the generated scripts use (bd/bd.tcl from ``bitcycle compile``, FINN's
stitched-IP ``make_project.tcl``) is a Tcl proc that models its effect on an in-memory design:
project files must exist, cells come from a catalog of the Xilinx IPs' interface pins and CONFIG
names (:mod:`.xilinx_ip`) or from the referenced module's real HDL (Verilator, :mod:`.hdl`),
connections must join existing pins of matching kind and AXI-Stream width, and
``validate_bd_design`` requires every interface of the data path connected and clocked. Synthesis,
implementation and the bitstream are vendor-only: ``launch_runs`` is recorded, nothing is faked.

:func:`run_tcl` returns the built design as a dict (cells and their CONFIG, connections, the
address map, the module references' parameters); a mistake raises :class:`TclCheckError` whose
message starts with the script's ``file:line``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bitcycle.errors import BitCycleError

HERE = Path(__file__).resolve().parent


class TclCheckError(BitCycleError):
    """The script failed under the stand-in: ``file:line: what``."""


def tclsh() -> str:
    exe = shutil.which("tclsh") or shutil.which("tclsh8.6")
    if exe is None:
        raise BitCycleError("tclsh not found: install the Debian package tcl (tools/setup.sh does, as root)")
    return exe


def _tcl_word(value) -> str:
    if isinstance(value, dict):
        return "{" + " ".join(f"{_tcl_word(k)} {_tcl_word(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "{" + " ".join(_tcl_word(v) for v in value) + "}"
    s = str(value)
    return "{" + s + "}" if s == "" or re.search(r"[\s{}\"\\$\[\];]", s) else s


def run_tcl(script: str | Path, check: bool = True) -> dict:
    """Execute ``script`` under the stand-in; the design description (``ok``, ``error``, cells, …)."""
    from bitcycle.compile.tclcheck.xilinx_ip import catalog

    script = Path(script).resolve()
    if not script.is_file():
        raise BitCycleError(f"{script}: no such Tcl script")
    with tempfile.TemporaryDirectory(prefix="tclcheck-") as tmp:
        cat = Path(tmp) / "catalog.tcl"
        cat.write_text(_tcl_word(catalog()))
        out = Path(tmp) / "design.json"
        done = subprocess.run([tclsh(), str(HERE / "main.tcl"), str(cat), sys.executable, str(script), str(out), tmp],
                              capture_output=True, text=True, cwd=script.parent)
        if not out.is_file():
            raise TclCheckError(f"{script.name}: the stand-in itself failed: {done.stderr.strip()[-500:]}")
        design = json.loads(out.read_text())
    if check and not design["ok"]:
        raise TclCheckError(design["error"])
    return design


def main(argv: list[str] | None = None) -> int:
    """``python -m bitcycle.compile.tclcheck SCRIPT [OUT.json]``: exit 1 with file:line on a mistake."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m bitcycle.compile.tclcheck SCRIPT.tcl [OUT.json]", file=sys.stderr)
        return 2
    design = run_tcl(argv[0], check=False)
    text = json.dumps(design, indent=2) + "\n"
    if len(argv) > 1:
        Path(argv[1]).write_text(text)
    else:
        print(text, end="")
    if not design["ok"]:
        print(design["error"], file=sys.stderr)
        return 1
    return 0
