"""BitCycle's MAC unit as a FINN custom op, one module per job; importing this module registers the
op and its RTL backend with FINN (so ``SpecializeLayers`` picks the RTL backend) and gives their names:

* :mod:`bitcycle.compile.bitserial_op`: ``BitSerialMVAU``, the generic HW layer (attributes, exact
  semantics through the golden model, cycles, resource estimates);
* :mod:`bitcycle.compile.bitserial_rtl`: ``BitSerialMVAU_rtl``, its RTL backend, and ``check_buildable``;
* :mod:`bitcycle.compile.lut_model`: the Yosys-fitted LUT / block-RAM model of one generated layer;
* :mod:`bitcycle.compile.mvau_rtl`: the Verilog wrapper (``templates/bitserial_mvau_wrapper.v.in``)
  and the shared hw/rtl sources of a layer;
* :mod:`bitcycle.compile.mvau_images`: the weight / threshold images the RTL's ``$readmemh`` loads;
* :mod:`bitcycle.compile.map_bitserial`: ``MapToBitSerialMVAU``, FINN MVAU → BitSerialMVAU;
* :mod:`bitcycle.compile.maxpool_op`: ``BitCycleMaxPool`` (+ ``_rtl``, hw/rtl's bitcycle_maxpool) and
  ``MapToBitCycleMaxPool``, FINN's binary MaxPool ``Pool`` → BitCycleMaxPool;
* :mod:`bitcycle.compile.dwc_op`: ``BitCycleDWC`` (+ ``_rtl``, hw/rtl's bitcycle_dwc) and ``MapToBitCycleDWC``,
  for the width converters FINN's vpc.sv cannot be simulated at.
"""

from __future__ import annotations

from bitcycle.compile.bitserial_op import BitSerialMVAU, acc_bits_for, engine_bits
from bitcycle.compile.bitserial_rtl import BitSerialMVAU_rtl, check_buildable
from bitcycle.compile.dwc_op import BitCycleDWC, BitCycleDWC_rtl, MapToBitCycleDWC
from bitcycle.compile.lut_model import LUT_COEF
from bitcycle.compile.map_bitserial import MapToBitSerialMVAU
from bitcycle.compile.maxpool_op import BitCycleMaxPool, BitCycleMaxPool_rtl, MapToBitCycleMaxPool
from bitcycle.compile.mvau_images import threshold_mem_text, threshold_rows, weight_mem_text
from bitcycle.compile.mvau_rtl import MVAU_TOP, rtl_dir
from bitcycle.hwif.rtl import rtl_sources as _hw_rtl_sources


def rtl_sources() -> list[str]:
    """hw/rtl files a generated layer compiles with (shared, one copy per project): hwif's list for bitcycle_mvau."""
    return _hw_rtl_sources(MVAU_TOP)


__all__ = ["BitSerialMVAU", "BitSerialMVAU_rtl", "MapToBitSerialMVAU", "BitCycleMaxPool", "BitCycleMaxPool_rtl",
           "MapToBitCycleMaxPool", "BitCycleDWC", "BitCycleDWC_rtl", "MapToBitCycleDWC", "check_buildable", "engine_bits",
           "acc_bits_for", "rtl_sources", "rtl_dir", "weight_mem_text", "threshold_rows", "threshold_mem_text",
           "LUT_COEF"]
