"""Stream width converter as a FINN custom op with an RTL backend (hw/rtl's ``bitcycle_dwc``), for
the widths at which FINN's own converter cannot be simulated here.

FINN's ``StreamingDataWidthConverter_rtl`` (finn-rtllib dwc_axi.sv + vpc.sv) is a bit-stream
repacker; its core holds max(IBITS, OBITS) / gcd(IBITS, OBITS) elements, and above
:data:`VPC_MAX_ELEMS` of them Verilator 5.048's front end stops with "Internal: Unexpected Call" in
vpc.sv (measured: 1 → 300, 1 → 512, 2 → 1024, 3 → 512, 512 → 1 fail; 2 → 512, 4 → 1024, 1 → 256
build). :class:`MapToBitCycleDWC` turns exactly those converters into :class:`BitCycleDWC` (the
same attributes and function), so the project's RTL — what the vendor flow receives and
``bitcycle rtlsim`` builds — stays simulable; the others stay FINN's. Importing this module
registers both ops with FINN.
"""

from __future__ import annotations

import math

from qonnx.transformation.base import Transformation

import finn.custom_op.fpgadataflow as finn_hw
import finn.custom_op.fpgadataflow.rtl as finn_rtl
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from finn.custom_op.fpgadataflow.streamingdatawidthconverter import StreamingDataWidthConverter

from bitcycle.compile.rtl_layer import GeneratedRtl, render_template
from bitcycle.hwif.rtl import rtl_sources

DWC_TOP = "bitcycle_dwc"
DWC_SOURCES = tuple(rtl_sources(DWC_TOP))
WRAPPER_TEMPLATE = "bitcycle_dwc_wrapper.v.in"
VPC_MAX_ELEMS = 256  # FINN's vpc.sv elaborates in Verilator 5.048 up to this many elements


def vpc_elements(ibits: int, obits: int) -> int:
    """Elements FINN's vpc core holds for an ibits → obits converter."""
    return max(ibits, obits) // math.gcd(ibits, obits)


@finn_hw.register_custom_op
class BitCycleDWC(StreamingDataWidthConverter):
    """FINN's width converter (same attributes, shapes and Python model), built from hw/rtl."""

    def lut_estimation(self, fpgapart: str) -> int:  # noqa: ARG002
        # Yosys synth_xilinx of bitcycle_dwc: 1→512 557 LUTs, 72→8 80 (gather/scatter: ~1.1 per bit of
        # the wide side); 4→18 227 (bit buffer of BW bits, a shifter over BW/gcd positions)
        i, o = self.get_instream_width(), self.get_outstream_width()
        if max(i, o) % min(i, o) == 0:
            return int(1.1 * max(i, o)) + 8
        bw = i + o + max(i, o)
        return bw * math.ceil(math.log2(bw // math.gcd(i, o))) + 8


def wrapper_v(top: str, ibits: int, obits: int) -> str:
    values = {"TOP": top, "IBITS": ibits, "OBITS": obits, "IN_MSB": (ibits + 7) // 8 * 8 - 1,
              "OUT_MSB": (obits + 7) // 8 * 8 - 1}
    return render_template(WRAPPER_TEMPLATE, values)


@finn_rtl.register_custom_op
class BitCycleDWC_rtl(GeneratedRtl, BitCycleDWC, RTLBackend):  # noqa: N801  (FINN's naming: <op>_rtl)
    """RTL backend: a Verilog wrapper top per node around hw/rtl's bitcycle_dwc (shared)."""

    SOURCES = DWC_SOURCES

    def get_nodeattr_types(self):
        attrs = BitCycleDWC.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        # the Python model (a reshape); `bitcycle rtlsim` simulates the generated files in Verilator
        BitCycleDWC.execute_node(self, context, graph)

    def generate_hdl(self, model, fpgapart, clk):
        gen, top = self.start_hdl()
        (gen / f"{top}.v").write_text(wrapper_v(top, self.get_instream_width(), self.get_outstream_width()))
        self.finish_hdl(gen)


class MapToBitCycleDWC(Transformation):
    """Each FINN StreamingDataWidthConverter whose vpc core would exceed VPC_MAX_ELEMS elements
    becomes a BitCycleDWC (run after InsertDWC, before SpecializeLayers)."""

    def apply(self, model):
        from qonnx.custom_op.registry import getCustomOp

        changed = False
        for node in model.graph.node:
            if node.op_type != "StreamingDataWidthConverter":
                continue
            inst = getCustomOp(node)
            if vpc_elements(inst.get_instream_width(), inst.get_outstream_width()) > VPC_MAX_ELEMS:
                node.op_type = "BitCycleDWC"
                changed = True
        return model, changed
