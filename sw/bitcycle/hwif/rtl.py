"""The hw/rtl files each RTL top level is built from, in compile order (packages first).

One list for every flow that builds the RTL — the cocotb testbenches (``sim/``), the driver's sim
backend, ``bitcycle bench hw``, the demo, ``bitcycle bench synth`` and the compile flow's LUT calibration
— so that a new file in hw/rtl is named once. ``make lint`` (tools/lint.py) lints every top whose list
no other contains; tests/test_lint.py requires every hw/rtl file to be in some list.
"""

from __future__ import annotations

from bitcycle.errors import BitCycleError

PARAM_CHECK = "bitcycle_param_check.sv"  # elaboration-time parameter checks, used by every module
CODES = "bitcycle_codes.svh"  # generated `BITCYCLE_CODES (mode / output-select codes, error bits): compiled first
# the engine and its one-job modules, in compile order
ENGINE = (CODES, PARAM_CHECK, "bitcycle_ram.sv", "bitcycle_skid.sv", "bitcycle_cfg_check.sv", "bitcycle_in_fsm.sv",
          "bitcycle_issue.sv", "bitcycle_sumtree.sv", "bitcycle_popcount.sv", "bitcycle_array.sv", "bitcycle_out_stage.sv", "bitcycle_engine.sv")

RTL_SOURCES: dict[str, tuple[str, ...]] = {
    "bitcycle_param_check": (PARAM_CHECK,),
    "bitcycle_ram": (PARAM_CHECK, "bitcycle_ram.sv"),
    "bitcycle_skid": (PARAM_CHECK, "bitcycle_skid.sv"),
    "bitcycle_cfg_check": (CODES, PARAM_CHECK, "bitcycle_cfg_check.sv"),
    "bitcycle_array": (PARAM_CHECK, "bitcycle_sumtree.sv", "bitcycle_popcount.sv", "bitcycle_array.sv"),
    "bitcycle_popcount": (PARAM_CHECK, "bitcycle_sumtree.sv", "bitcycle_popcount.sv"),
    "bitcycle_sumtree": (PARAM_CHECK, "bitcycle_sumtree.sv"),
    "bitcycle_in_fsm": ("bitcycle_in_fsm.sv",),
    "bitcycle_issue": ("bitcycle_issue.sv",),
    "bitcycle_out_stage": (CODES, PARAM_CHECK, "bitcycle_out_stage.sv"),
    "bitcycle_engine": ENGINE,
    # one FINN inference layer (BitSerialMVAU_rtl): compile copies these once per project
    "bitcycle_mvau": (PARAM_CHECK, "bitcycle_axis_fifo.sv", "bitcycle_sumtree.sv", "bitcycle_popcount.sv",
                      "bitcycle_dotcount.sv",
                      "bitcycle_rom.sv", "bitcycle_mvau_inbuf.sv", "bitcycle_mvau.sv"),
    "bitcycle_dotcount": (PARAM_CHECK, "bitcycle_dotcount.sv"),
    "bitcycle_rom": (PARAM_CHECK, "bitcycle_rom.sv"),
    # between layers in `bitcycle rtlsim`'s stitched dataflow
    "bitcycle_axis_fifo": (PARAM_CHECK, "bitcycle_axis_fifo.sv"),
    # max-pool of ±1 activations after FINN's depthwise sliding window (compile's BitCycleMaxPool_rtl)
    "bitcycle_maxpool": (PARAM_CHECK, "bitcycle_maxpool.sv"),
    # stream width converter (compile's BitCycleDWC_rtl, in place of FINN's StreamingDataWidthConverter_rtl)
    "bitcycle_dwc": (PARAM_CHECK, "bitcycle_dwc.sv"),
    "bitcycle_top": ("bitcycle_regs_pkg.sv", "bitcycle_regs.sv", *ENGINE, "bitcycle_top.sv"),
}


def rtl_sources(top: str) -> list[str]:
    """File names under hw/rtl/ that build ``top``."""
    try:
        return list(RTL_SOURCES[top])
    except KeyError:
        raise BitCycleError(f"no RTL top level {top!r}; choose one of {', '.join(RTL_SOURCES)}") from None
