"""The Verilog of one generated BitSerialMVAU_rtl layer: its wrapper top (FINN's convention for RTL
ops: Vivado's module reference and IP packager take a Verilog top), rendered from the package's
``templates/bitserial_mvau_wrapper.v.in``, and the shared RTL it instantiates (hw/rtl's
``bitcycle_mvau``, the file list of ``bitcycle.hwif.rtl``), copied once per project. The memory
images the wrapper names are written by :mod:`bitcycle.compile.mvau_images`.
"""

from __future__ import annotations

from bitcycle.compile.rtl_layer import SHARED_DIR, install_sources, render_template, rtl_dir  # noqa: F401  (re-exported)
from bitcycle.hwif.rtl import rtl_sources

MVAU_TOP = "bitcycle_mvau"
# hw/rtl files of one layer, in compile order; one copy per project under codegen/SHARED_DIR
MVAU_SOURCES = tuple(rtl_sources(MVAU_TOP))
OUT_DEPTH = 8  # output FIFO beats of a layer (covers the 4-cycle pipeline at one beat per cycle)
WRAPPER_TEMPLATE = "bitserial_mvau_wrapper.v.in"
# rtl_parameters keys that are not plain Verilog parameters of the instance (strings / the port value)
_NOT_PARAMS = ("W_FILE", "WL_FILE", "T_FILE", "BITS")


def wrapper_v(top: str, p: dict) -> str:
    """Verilog-2001 top of one layer: FINN's port names (ap_clk, ap_rst_n, in0_V_*, out0_V_*)."""
    inw = ((p["SIMD"] * p["IBITS"] + 7) // 8) * 8
    outw = ((p["PE"] * p["OBITS"] + 7) // 8) * 8
    params = ", ".join(f".{k}({v})" for k, v in p.items() if k not in _NOT_PARAMS)
    return render_template(WRAPPER_TEMPLATE, {
        "TOP": top, "BITS": p["BITS"], "MW": p["MW"], "MH": p["MH"], "PE": p["PE"], "SIMD": p["SIMD"],
        "IN_MSB": inw - 1, "OUT_MSB": outw - 1, "PARAMS": params, "W_FILE": p["W_FILE"], "WL_FILE": p["WL_FILE"],
        "T_FILE": p["T_FILE"]})
