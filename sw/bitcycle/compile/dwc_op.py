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

import filecmp
import math
import shutil
from pathlib import Path

from qonnx.transformation.base import Transformation

import finn.custom_op.fpgadataflow as finn_hw
import finn.custom_op.fpgadataflow.rtl as finn_rtl
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from finn.custom_op.fpgadataflow.streamingdatawidthconverter import StreamingDataWidthConverter

from bitcycle.compile.mvau_rtl import SHARED_DIR, rtl_dir
from bitcycle.errors import BitCycleError
from bitcycle.hwif.rtl import rtl_sources

DWC_TOP = "bitcycle_dwc"
DWC_SOURCES = tuple(rtl_sources(DWC_TOP))
WRAPPER_TEMPLATE = Path(__file__).resolve().parent / "templates" / "bitcycle_dwc_wrapper.v.in"
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


def install_shared(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in DWC_SOURCES:
        src, dst = rtl_dir() / name, dest / name
        if not dst.is_file() or not filecmp.cmp(src, dst, shallow=False):
            shutil.copy(src, dst)


def wrapper_v(top: str, ibits: int, obits: int) -> str:
    if not WRAPPER_TEMPLATE.is_file():
        raise BitCycleError(f"{WRAPPER_TEMPLATE.name} is missing from the bitcycle package (package data); "
                            "reinstall bitcycle (pip install -e .)")
    values = {"TOP": top, "IBITS": ibits, "OBITS": obits, "IN_MSB": (ibits + 7) // 8 * 8 - 1,
              "OUT_MSB": (obits + 7) // 8 * 8 - 1}
    text = WRAPPER_TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    return text


@finn_rtl.register_custom_op
class BitCycleDWC_rtl(BitCycleDWC, RTLBackend):  # noqa: N801  (FINN's naming: <op>_rtl)
    """RTL backend: a Verilog wrapper top per node around hw/rtl's bitcycle_dwc (shared)."""

    def get_nodeattr_types(self):
        attrs = BitCycleDWC.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        # the Python model (a reshape); `bitcycle rtlsim` simulates the generated files in Verilator
        BitCycleDWC.execute_node(self, context, graph)

    def _gen_dir(self) -> Path:
        gen = self.get_nodeattr("code_gen_dir_ipgen")
        if not gen:
            raise BitCycleError(f"layer {self.onnx_node.name}: code_gen_dir_ipgen is not set (run PrepareIP)")
        return Path(gen)

    def _top(self) -> str:
        return self.get_nodeattr("gen_top_module") or f"{self.onnx_node.name}_wrapper"

    def get_rtl_file_list(self, abspath=False):
        top = self._top()
        if not abspath:
            return [*DWC_SOURCES, f"{top}.v"]
        shared = self._gen_dir().parent / SHARED_DIR
        return [*(shared / f for f in DWC_SOURCES), self._gen_dir() / f"{top}.v"]

    def code_generation_ipi(self):
        # CreateStitchedIP splits each add_files command and wants exactly 3 tokens: one file per command
        return [f"add_files -norecurse {f}" for f in self.get_rtl_file_list(abspath=True)] + [
            f"create_bd_cell -type module -reference {self.get_nodeattr('gen_top_module')} {self.onnx_node.name}"]

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["axilite"], intf["aximm"] = [], []
        return intf

    def generate_hdl(self, model, fpgapart, clk):
        gen = self._gen_dir().resolve()
        gen.mkdir(parents=True, exist_ok=True)
        top = f"{self.onnx_node.name}_wrapper"
        self.set_nodeattr("gen_top_module", top)
        install_shared((gen.parent / SHARED_DIR).resolve())
        (gen / f"{top}.v").write_text(wrapper_v(top, self.get_instream_width(), self.get_outstream_width()))
        self.set_nodeattr("ipgen_path", str(gen))
        self.set_nodeattr("ip_path", str(gen))


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
