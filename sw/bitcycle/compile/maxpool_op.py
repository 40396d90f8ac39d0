"""Max-pool of ±1 activations as a FINN custom op with an RTL backend (hw/rtl's ``bitcycle_maxpool``).

FINN has no RTL max-pool: ``InferPool`` lowers a MaxPool to a depthwise sliding window
(``ConvolutionInputGenerator``) and a ``Pool`` node whose only backend is HLS. On ±1 data
(FINN's BINARY codes, 1 = +1) the max is the OR of the window's bits, which
``bitcycle_maxpool`` computes on the window's stream. :class:`MapToBitCycleMaxPool` turns each
binary MaxPool ``Pool`` into a :class:`BitCycleMaxPool` (same attributes, so FINN's folding and
stream shapes hold); ``SpecializeLayers`` then picks :class:`BitCycleMaxPool_rtl`, whose
``generate_hdl`` writes a Verilog top ``<node>_wrapper.v`` and copies the hw/rtl sources once per
project (``<codegen>/bitcycle_rtl/``). Importing this module registers both ops with FINN.
"""

from __future__ import annotations


import numpy as np
from qonnx.transformation.base import Transformation

import finn.custom_op.fpgadataflow as finn_hw
import finn.custom_op.fpgadataflow.rtl as finn_rtl
from finn.custom_op.fpgadataflow.pool import Pool
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from bitcycle.compile.rtl_layer import GeneratedRtl, render_template
from bitcycle.errors import BitCycleError
from bitcycle.golden.pool import binary_maxpool_stream
from bitcycle.hwif.rtl import rtl_sources

POOL_TOP = "bitcycle_maxpool"
POOL_SOURCES = tuple(rtl_sources(POOL_TOP))
WRAPPER_TEMPLATE = "bitcycle_maxpool_wrapper.v.in"
BINARY_TYPES = ("BINARY", "BIPOLAR")


def _k2(inst) -> int:
    return int(np.prod(inst.get_nodeattr("KernelSize")))


@finn_hw.register_custom_op
class BitCycleMaxPool(Pool):
    """FINN's Pool restricted to MaxPool of 1-bit (±1) data, computed by the golden model's OR."""

    def verify_node(self):
        info = super().verify_node()
        if self.get_nodeattr("Function") != "MaxPool" or self.get_nodeattr("InputDataType") not in BINARY_TYPES:
            info.append("BitCycleMaxPool: only MaxPool of BINARY/BIPOLAR data")
        return info

    def execute_node(self, context, graph):
        node = self.onnx_node
        ch, k2 = self.get_nodeattr("Channels"), _k2(self)
        x = np.asarray(context[node.input[0]])
        bits = np.rint(x).astype(np.int64)
        if self.get_nodeattr("InputDataType") == "BIPOLAR":
            bits = (bits + 1) // 2  # ±1 → 0/1
        if self.get_nodeattr("exec_mode") == "rtlsim":  # hw/rtl's bitcycle_maxpool in Verilator (rtlsim_exec)
            from bitcycle.compile.rtlsim_exec import execute_maxpool_rtlsim

            y = execute_maxpool_rtlsim(self, context)
        else:
            y = binary_maxpool_stream(bits.reshape(-1, ch), k2)  # im2col layout: k2 runs of ch values
        if self.get_nodeattr("InputDataType") == "BIPOLAR":
            y = 2 * y - 1
        context[node.output[0]] = y.astype(np.float32).reshape(context[node.output[0]].shape)

    def lut_estimation(self, fpgapart: str) -> int:  # noqa: ARG002
        # an OR accumulator and an output register per channel lane, a window counter
        # (Yosys synth_xilinx, PE=8, K2=4: 22 LUTs)
        return 2 * int(self.get_nodeattr("PE")) + 8

    def bram_estimation(self, fpgapart: str) -> int:  # noqa: ARG002
        return 0


def check_buildable(inst) -> None:
    name = inst.onnx_node.name
    ch, pe = inst.get_nodeattr("Channels"), inst.get_nodeattr("PE")
    if pe < 1 or ch % pe:
        raise BitCycleError(f"layer {name}: PE={pe} does not divide Channels={ch}")
    if inst.get_nodeattr("Function") != "MaxPool" or inst.get_nodeattr("InputDataType") not in BINARY_TYPES:
        raise BitCycleError(f"layer {name}: bitcycle_maxpool pools BINARY/BIPOLAR data by MaxPool only")


def wrapper_v(top: str, pe: int, k2: int) -> str:
    width = ((pe + 7) // 8) * 8
    pad = width - pe
    out = f"{{{pad}'b0, pooled}}" if pad else "pooled"
    values = {"TOP": top, "PE": pe, "K2": k2, "MSB": width - 1, "PE_MSB": pe - 1, "OUT_EXPR": out}
    return render_template(WRAPPER_TEMPLATE, values)


@finn_rtl.register_custom_op
class BitCycleMaxPool_rtl(GeneratedRtl, BitCycleMaxPool, RTLBackend):  # noqa: N801  (FINN's naming: <op>_rtl)
    """RTL backend: a Verilog wrapper top per node around hw/rtl's bitcycle_maxpool (shared)."""

    SOURCES = POOL_SOURCES

    def get_nodeattr_types(self):
        attrs = BitCycleMaxPool.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        """The RTL's function on its stream. As for FINN's specialised pools, the input is in the
        depthwise window's stream layout [pixels, channels/PE, K·K, PE] (what FINN's
        ConvolutionInputGenerator_rtl emits under exec_mode cppsim), not im2col's [pixels, K·K, channels].
        Under exec_mode rtlsim: the generated files in Verilator (rtlsim_exec; FINN's would need xsim)."""
        node = self.onnx_node
        pe, k2 = self.get_nodeattr("PE"), _k2(self)
        bits = np.rint(np.asarray(context[node.input[0]])).astype(np.int64)
        bipolar = self.get_nodeattr("InputDataType") == "BIPOLAR"
        if bipolar:
            bits = (bits + 1) // 2  # ±1 → 0/1
        if self.get_nodeattr("exec_mode") == "rtlsim":  # its generated RTL in Verilator (rtlsim_exec)
            from bitcycle.compile.rtlsim_exec import execute_maxpool_rtlsim

            y = execute_maxpool_rtlsim(self, context)
        else:
            y = binary_maxpool_stream(bits.reshape(-1, pe), k2)  # [pixels · channels/PE, PE]: channel order kept
        if bipolar:
            y = 2 * y - 1
        context[node.output[0]] = y.astype(np.float32).reshape(context[node.output[0]].shape)

    def generate_hdl(self, model, fpgapart, clk):
        check_buildable(self)
        gen, top = self.start_hdl()
        (gen / f"{top}.v").write_text(wrapper_v(top, int(self.get_nodeattr("PE")), _k2(self)))
        self.finish_hdl(gen)


class MapToBitCycleMaxPool(Transformation):
    """Each FINN ``Pool`` computing MaxPool of BINARY/BIPOLAR data becomes a BitCycleMaxPool (the
    same attributes); other pools stay FINN's (HLS)."""

    def apply(self, model):
        from qonnx.custom_op.registry import getCustomOp

        changed = False
        for node in model.graph.node:
            if node.op_type != "Pool":
                continue
            inst = getCustomOp(node)
            if inst.get_nodeattr("Function") == "MaxPool" and inst.get_nodeattr("InputDataType") in BINARY_TYPES:
                node.op_type = "BitCycleMaxPool"
                changed = True
        return model, changed
