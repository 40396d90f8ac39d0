"""The Verilog of one generated BitSerialMVAU_rtl layer: its wrapper top (FINN's convention for RTL
ops: Vivado's module reference and IP packager take a Verilog top), rendered from the package's
``templates/bitserial_mvau_wrapper.v.in``, and the shared RTL it instantiates (hw/rtl's
``bitcycle_mvau``, the file list of ``bitcycle.hwif.rtl``), copied once per project. The memory
images the wrapper names are written by :mod:`bitcycle.compile.mvau_images`.
"""

from __future__ import annotations

import filecmp
import re
import shutil
from pathlib import Path

from bitcycle.errors import BitCycleError
from bitcycle.hwif.rtl import rtl_sources

MVAU_TOP = "bitcycle_mvau"
# hw/rtl files of one layer, in compile order; one copy per project under codegen/SHARED_DIR
MVAU_SOURCES = tuple(rtl_sources(MVAU_TOP))
SHARED_DIR = "bitcycle_rtl"
OUT_DEPTH = 8  # output FIFO beats of a layer (covers the 4-cycle pipeline at one beat per cycle)
WRAPPER_TEMPLATE = Path(__file__).resolve().parent / "templates" / "bitserial_mvau_wrapper.v.in"
# rtl_parameters keys that are not plain Verilog parameters of the instance (strings / the port value)
_NOT_PARAMS = ("W_FILE", "T_FILE", "BITS")


def rtl_dir() -> Path:
    """hw/rtl of the source tree (the package is installed editable from the repository)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "hw" / "rtl").is_dir():
            return parent / "hw" / "rtl"
    raise BitCycleError("hw/rtl not found next to the bitcycle package; run from a source checkout (pip install -e .)")


def install_shared(dest: Path) -> list[Path]:
    """Copy the layer's hw/rtl sources into ``dest`` (once: an identical copy is left alone)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in MVAU_SOURCES:
        src, dst = rtl_dir() / name, dest / name
        if not dst.is_file() or not filecmp.cmp(src, dst, shallow=False):
            shutil.copy(src, dst)
        out.append(dst)
    return out


def wrapper_v(top: str, p: dict) -> str:
    """Verilog-2001 top of one layer: FINN's port names (ap_clk, ap_rst_n, in0_V_*, out0_V_*)."""
    if not WRAPPER_TEMPLATE.is_file():
        raise BitCycleError(f"{WRAPPER_TEMPLATE.name} is missing from the bitcycle package (package data); "
                            "reinstall bitcycle (pip install -e .)")
    inw = ((p["SIMD"] * p["IBITS"] + 7) // 8) * 8
    outw = ((p["PE"] * p["OBITS"] + 7) // 8) * 8
    params = ", ".join(f".{k}({v})" for k, v in p.items() if k not in _NOT_PARAMS)
    values = {"TOP": top, "BITS": p["BITS"], "MW": p["MW"], "MH": p["MH"], "PE": p["PE"], "SIMD": p["SIMD"],
              "IN_MSB": inw - 1, "OUT_MSB": outw - 1, "PARAMS": params, "W_FILE": p["W_FILE"], "T_FILE": p["T_FILE"]}
    text = WRAPPER_TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = sorted(set(re.findall(r"@([A-Z_]+)@", text)))
    if left:
        raise BitCycleError(f"{WRAPPER_TEMPLATE.name} names {', '.join(left)}, which wrapper_v does not fill")
    return text
