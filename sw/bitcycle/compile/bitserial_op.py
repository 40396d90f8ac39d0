"""``BitSerialMVAU``: BitCycle's MAC unit as a FINN generic HW layer (its RTL backend is
:mod:`bitcycle.compile.bitserial_rtl`).

A FINN MVAU whose binary weights (±1) sit in the engine's weight memory and whose integer operand
is walked one bit-plane per cycle, so a vector costs ``bits · (MH/PE) · (MW/SIMD)`` cycles and the
width ``bits`` is a run-time register in ``[bits_min, bits_max]`` (the backward passes of training
use it; the forward pass uses ``bits`` = 1 for binary inputs, the input width for the first layer).

Semantics (what ``execute_node`` computes, through ``bitcycle.golden.bitserial_matmul``; under
``exec_mode`` rtlsim through the node's generated RTL in Verilator instead, ``rtlsim_exec``):

    s = W · x          W ∈ {−1, +1}^{MH×MW}; x bipolar (BINARY tensors hold 0 ↦ −1, 1 ↦ +1) or integer
    s = sat(s, acc_bits)
    y = Σ_j [s ≥ T_j] + ActVal   (thresholds on the signed sum; FINN's MultiThreshold semantics)
    y = s                        (noActivation)

Importing this module registers the op with FINN (``finn.custom_op.fpgadataflow``).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.custom_op.general.multithreshold import multithreshold

import finn.custom_op.fpgadataflow as finn_hw
from finn.custom_op.fpgadataflow.matrixvectoractivation import MVAU

from bitcycle.compile import lut_model
from bitcycle.errors import BitCycleError
from bitcycle.golden.accwidth import acc_bits_for_range
from bitcycle.golden.bitserial import MAX_BITS, bitserial_matmul
from bitcycle.golden.cycles import array_cycles
from bitcycle.hwif.codes import MODE_FORWARD


def engine_bits(dt: DataType) -> int:
    """Width of the engine's integer operand for an input of FINN datatype ``dt``."""
    if dt in (DataType["BINARY"], DataType["BIPOLAR"]):
        return 1
    if not dt.is_integer():
        raise BitCycleError(f"the engine takes integer inputs, not {dt.name}")
    return dt.bitwidth() + (0 if dt.signed() else 1)  # unsigned k bits need k+1 two's-complement bits


def acc_bits_for(mw: int, in_dt: DataType) -> int:
    """Minimal signed accumulator width that can never overflow for MW terms of ±1 · x, x of FINN
    datatype ``in_dt`` (BINARY holds the bipolar code): golden's rule on the datatype's range."""
    if in_dt in (DataType["BINARY"], DataType["BIPOLAR"]):
        return acc_bits_for_range(mw, (-1, 1))
    return acc_bits_for_range(mw, (int(in_dt.min()), int(in_dt.max())))


@finn_hw.register_custom_op
class BitSerialMVAU(MVAU):
    """FINN MVAU computed by BitCycle's bit-serial MAC array (generic HW layer)."""

    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs.update({
            "bits": ("i", True, 1),          # integer-operand width of the forward pass
            "bits_min": ("i", False, 1),     # run-time range of the engine's bits register
            "bits_max": ("i", False, MAX_BITS),
            "acc_bits": ("i", True, 32),     # signed accumulator width (output saturation)
            "wrom_lut_pe": ("i", False, 0),  # top PE lanes with weights in LUT logic, not block RAM
        })
        return attrs

    def verify_node(self):
        info = super().verify_node()
        lo, hi, b = self.get_nodeattr("bits_min"), self.get_nodeattr("bits_max"), self.get_nodeattr("bits")
        if not 1 <= lo <= b <= hi <= MAX_BITS:
            info.append(f"bits range violated: need 1 <= bits_min={lo} <= bits={b} <= bits_max={hi} <= {MAX_BITS}")
        return info

    def _engine_inputs(self, context):
        node = self.onnx_node
        x = np.asarray(context[node.input[0]]).reshape(-1, self.get_nodeattr("MW"))
        if self.get_nodeattr("inputDataType") == "BINARY":
            x = 2 * x - 1  # BINARY holds the bipolar code
        w = np.asarray(context[node.input[1]])
        return x.astype(np.int64), w.astype(np.int8)

    def execute_node(self, context, graph):
        node = self.onnx_node
        if self.get_nodeattr("exec_mode") == "rtlsim":  # the generated RTL in Verilator (rtlsim_exec)
            from bitcycle.compile.rtlsim_exec import execute_rtlsim

            y = execute_rtlsim(self, context)
            context[node.output[0]] = y.astype(np.float32).reshape(context[node.output[0]].shape)
            return
        x, w = self._engine_inputs(context)
        s = bitserial_matmul(w.T, x.T, self.get_nodeattr("bits"), self.get_nodeattr("acc_bits")).T
        if self.get_nodeattr("noActivation") == 0:
            s = multithreshold(s.astype(np.float64), np.asarray(context[node.input[2]], dtype=np.float64),
                               1, self.get_nodeattr("ActVal"))
        oshape = context[node.output[0]].shape
        context[node.output[0]] = np.asarray(s, dtype=np.float32).reshape(oshape)

    def get_exp_cycles(self):
        """One bit-plane per cycle: bits · (MH/PE) · (MW/SIMD) per input vector (golden's cycle model)."""
        return self.cycles_at(self.get_nodeattr("bits"))

    def cycles_at(self, bits: int) -> int:
        """Array cycles of one image at ``bits``: a FORWARD job on W [MH, MW] over its input vectors."""
        g = self.get_nodeattr
        vectors = int(np.prod(g("numInputVectors")))
        return array_cycles(MODE_FORWARD, int(bits), g("MH"), g("MW"), vectors, g("PE"), g("SIMD"))

    def lut_lanes(self) -> int:
        """PE lanes whose weights bitcycle_mvau keeps in LUT logic (WROM_LUT_PE): all of them for
        MVAU's ram_style "distributed", else ``wrom_lut_pe`` (the folding's block-RAM trade)."""
        pe = self.get_nodeattr("PE")
        return pe if self.get_nodeattr("ram_style") == "distributed" else min(pe, self.get_nodeattr("wrom_lut_pe"))

    def _wrom_shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(width, depth) of the block-RAM lanes' weight ROM and of the LUT lanes'."""
        pe, simd, mw, mh = (self.get_nodeattr(k) for k in ("PE", "SIMD", "MW", "MH"))
        lut = self.lut_lanes()
        return lut_model.wrom_shape(pe, simd, mw, mh, pe - lut), lut_model.wrom_shape(pe, simd, mw, mh, lut)

    def lut_estimation(self, fpgapart):
        """Yosys-calibrated model of the generated layer (bitcycle.compile.lut_model)."""
        pe, simd, mw, mh = (self.get_nodeattr(k) for k in ("PE", "SIMD", "MW", "MH"))
        # built for its forward bits (bitserial_rtl: the wrapper ties bits_i to them)
        return lut_model.layer_luts(pe, simd, self.get_nodeattr("acc_bits"), self.get_nodeattr("bits"), mw, mh,
                                    lut_lanes=self.lut_lanes())

    def bram_estimation(self, fpgapart=None):
        """RAMB18s of the weight ROM as bitcycle_mvau builds it: block RAM from 8 kbit up, in the
        cheapest RAMB18 aspect (16K×1 … 512×36); smaller ROMs, and the lanes in LUT logic, are
        in the LUT count."""
        return lut_model.rom_ramb18(*self._wrom_shapes()[0])

    def uram_estimation(self, fpgapart=None):
        return 0

    def bram_efficiency_estimation(self, fpgapart=None):
        return lut_model.rom_efficiency(*self._wrom_shapes()[0])

    def dsp_estimation(self, fpgapart):
        """bitcycle_mvau: a multi-bit layer accumulates ±2^p · plane sum in one DSP48E1 per PE lane;
        a 1-bit layer is LUT logic only."""
        return self.get_nodeattr("PE") if self.get_nodeattr("bits") > 1 else 0

    def get_weight_datatype(self):
        return DataType["BIPOLAR"]

    # FINN's step_minimize_bit_width calls these; MVAU's versions read a BINARY input as {0, 1},
    # the engine reads it as the bipolar code of {−1, +1}: re-derive from acc_bits_for instead.
    def minimize_accumulator_width(self, model, datatype_only=False):
        idt = DataType[self.get_nodeattr("inputDataType")]
        acc = acc_bits_for(self.get_nodeattr("MW"), idt)
        self.set_nodeattr("acc_bits", acc)
        adt = DataType[f"INT{acc}"]
        if self.get_nodeattr("noActivation"):
            odt = DataType[self.get_nodeattr("outputDataType")]
            if not (odt.is_integer() and odt.signed() and odt.bitwidth() >= acc):
                self.set_nodeattr("outputDataType", adt.name)
        self.set_nodeattr("accDataType", adt.name)
        return adt

    def minimize_weight_bit_width(self, model, datatype_only=False):
        self.set_nodeattr("weightDataType", "BIPOLAR")
        return DataType["BIPOLAR"]
