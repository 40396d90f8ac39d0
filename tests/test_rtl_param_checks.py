"""Elaboration-time parameter checks (hw/rtl/bitcycle_param_check.sv) stop every tool that builds
the RTL — Verilator, Icarus and Yosys — with the module's own message, and let good parameters
through; and every flow names the same source files (``bitcycle.hwif.rtl``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bitcycle.hwif.rtl import RTL_SOURCES, rtl_sources

ROOT = Path(__file__).resolve().parents[1]
RTL = ROOT / "hw" / "rtl"
VENV_BIN = Path(sys.executable).parent

# (top, bad parameters, the message they must produce); None: good parameters, no message
CASES = [
    ("bitcycle_engine", {"DATA_W": 48}, "bitcycle_engine: DATA_W must be 32 or 64 (AXI DMA stream widths)"),
    ("bitcycle_engine", {"THR_MAX": 16}, "bitcycle_engine: THR_MAX must be in 1..15"),
    ("bitcycle_engine", {"PE": 4, "SIMD": 16}, None),
    ("bitcycle_ram", {"LANE_W": 8, "LANES": 4, "DEPTH": 16}, None),
    ("bitcycle_ram", {"LANES": 0}, "bitcycle_ram: LANE_W, LANES and DEPTH must be >= 1"),
    ("bitcycle_maxpool", {"PE": 3, "K2": 9}, None),
    ("bitcycle_maxpool", {"K2": 0}, "bitcycle_maxpool: PE and K2 (window positions) must be >= 1"),
    ("bitcycle_dwc", {"IBITS": 4, "OBITS": 18}, None),
    ("bitcycle_dwc", {"OBITS": 0}, "bitcycle_dwc: IBITS and OBITS must be >= 1"),
]
IDS = [f"{top}-{'-'.join(f'{k}{v}' for k, v in params.items())}" for top, params, _ in CASES]


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    assert path, f"{name} not found: make setup installs it"
    return path


def _files(top: str) -> list[str]:
    return [str(RTL / f) for f in rtl_sources(top)]


def _verilator(top: str, params: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("verilator"), "--lint-only", "-Wall", "-Wno-DECLFILENAME", *_files(top), "--top-module", top,
                           *(f"-G{k}={v}" for k, v in params.items())], capture_output=True, text=True, cwd=tmp_path)


def _icarus(top: str, params: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    vvp = tmp_path / "t.vvp"
    build = subprocess.run([_tool("iverilog"), "-g2012", "-s", top, "-o", str(vvp), *(f"-P{top}.{k}={v}" for k, v in params.items()),
                            *_files(top)], capture_output=True, text=True)
    if build.returncode:
        return build
    return subprocess.run([_tool("vvp"), "-n", str(vvp)], capture_output=True, text=True, cwd=tmp_path)


def _yosys(top: str, params: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    chparam = " ".join(f"-set {k} {v}" for k, v in params.items())
    script = f"read_verilog -sv {' '.join(_files(top))}\nchparam {chparam} {top}\nhierarchy -check -top {top}\n"
    return subprocess.run([_tool("yosys"), "-q", "-p", script], capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize("tool", [_verilator, _icarus, _yosys], ids=["verilator", "icarus", "yosys"])
@pytest.mark.parametrize("top,params,message", CASES, ids=IDS)
def test_bad_parameters_stop_elaboration_with_the_message(tool, top, params, message, tmp_path):
    done = tool(top, params, tmp_path)
    out = done.stdout + done.stderr
    if message is None:
        assert done.returncode == 0 and "must" not in out, out
    else:
        assert done.returncode != 0 and message in out, out


def test_every_flow_names_existing_files():
    """(make lint takes its files from the same lists: tests/test_lint.py.)"""
    for files in RTL_SOURCES.values():
        assert all((RTL / f).is_file() for f in files), files
    # every hand-written module is reachable from some top's list
    listed = {f for files in RTL_SOURCES.values() for f in files}
    assert {p.name for p in RTL.glob("*.sv")} <= listed
