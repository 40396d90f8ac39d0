"""BitCycle's MAC unit as a FINN custom op: ``BitSerialMVAU`` (+ its RTL backend ``BitSerialMVAU_rtl``).

A FINN MVAU whose binary weights (±1) sit in the engine's weight memory and whose integer operand
is walked one bit-plane per cycle, so a vector costs ``bits · (MH/PE) · (MW/SIMD)`` cycles and the
width ``bits`` is a run-time register in ``[bits_min, bits_max]`` (the backward passes of training
use it; the forward pass uses ``bits`` = 1 for binary inputs, the input width for the first layer).

Semantics (what ``execute_node`` computes, through ``bitcycle.golden.bitserial_matmul``):

    s = W · x          W ∈ {−1, +1}^{MH×MW}; x bipolar (BINARY tensors hold 0 ↦ −1, 1 ↦ +1) or integer
    s = sat(s, acc_bits)
    y = Σ_j [s ≥ T_j] + ActVal   (thresholds on the signed sum; FINN's MultiThreshold semantics)
    y = s                        (noActivation)

FINN's XNOR MVAU thresholds popcounts (pop = (s + MW)/2); :class:`MapToBitSerialMVAU` rewrites
them as T' = 2T − MW and absorbs the ``·2 − MW`` compensation after a last layer, so the mapped
graph computes exactly what FINN's did. Importing this module registers both classes with FINN
(``finn.custom_op.fpgadataflow`` and ``.rtl``), so ``SpecializeLayers`` picks the RTL backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.general.multithreshold import multithreshold
from qonnx.transformation.base import Transformation

import finn.custom_op.fpgadataflow as finn_hw
import finn.custom_op.fpgadataflow.rtl as finn_rtl
from finn.custom_op.fpgadataflow.matrixvectoractivation import MVAU
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from bitcycle.compile import mvau_rtl as R
from bitcycle.compile.mvau_rtl import rtl_dir, weight_mem_text  # noqa: F401  (project.py's names)
from bitcycle.errors import BitCycleError
from bitcycle.golden.bitserial import MAX_BITS, bitserial_matmul

# LUT cost of one generated layer (hw/rtl/bitcycle_mvau.sv and its buffers), fitted by
# `bitcycle bench compile-lut` (Yosys 0.23 `synth_xilinx -flatten`, xc7, LUTs + 4 per LUTRAM) to
# fixed + per popcount cell (PE·SIMD) + per lane bit (PE · (accumulator + threshold width)); see
# calibrate.features. Re-run the bench and update these when the RTL changes.
ENGINE_LUT_FIXED = 96.9
ENGINE_LUT_PER_CELL = 7.47
ENGINE_LUT_PER_LANE_BIT = 1.16


def engine_bits(dt: DataType) -> int:
    """Width of the engine's integer operand for an input of FINN datatype ``dt``."""
    if dt in (DataType["BINARY"], DataType["BIPOLAR"]):
        return 1
    if not dt.is_integer():
        raise BitCycleError(f"the engine takes integer inputs, not {dt.name}")
    return dt.bitwidth() + (0 if dt.signed() else 1)  # unsigned k bits need k+1 two's-complement bits


def acc_bits_for(mw: int, in_dt: DataType) -> int:
    """Minimal signed accumulator width that can never overflow for MW terms of ±1 · x."""
    if in_dt in (DataType["BINARY"], DataType["BIPOLAR"]):
        bound = mw
    else:
        bound = mw * max(abs(int(in_dt.min())), abs(int(in_dt.max())))
    return max(2, int(bound).bit_length() + 1)


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
        x, w = self._engine_inputs(context)
        s = bitserial_matmul(w.T, x.T, self.get_nodeattr("bits"), self.get_nodeattr("acc_bits")).T
        if self.get_nodeattr("noActivation") == 0:
            s = multithreshold(s.astype(np.float64), np.asarray(context[node.input[2]], dtype=np.float64),
                               1, self.get_nodeattr("ActVal"))
        oshape = context[node.output[0]].shape
        context[node.output[0]] = np.asarray(s, dtype=np.float32).reshape(oshape)

    def get_exp_cycles(self):
        """One bit-plane per cycle: bits · (MH/PE) · (MW/SIMD) per input vector."""
        return int(self.get_nodeattr("bits") * super().get_exp_cycles())

    def cycles_at(self, bits: int) -> int:
        return int(bits * super().get_exp_cycles())

    def lut_estimation(self, fpgapart):
        """Yosys-calibrated model of the generated layer (see ENGINE_LUT_* above)."""
        from bitcycle.compile.calibrate import features

        bits_max = max(self.get_nodeattr("bits"), self.get_nodeattr("bits_max"))
        f = features(self.get_nodeattr("PE"), self.get_nodeattr("SIMD"), min(32, self.get_nodeattr("acc_bits")),
                     bits_max, self.get_nodeattr("MW"))
        width, depth = self._wrom_shape()
        rom = math.ceil(width * depth / 64) if width * depth < 8192 else 0  # distributed ROM: 64 bits per LUT6
        return int(math.ceil(ENGINE_LUT_FIXED * f[0] + ENGINE_LUT_PER_CELL * f[1] + ENGINE_LUT_PER_LANE_BIT * f[2])) + rom

    def _wrom_shape(self) -> tuple[int, int]:
        pe, simd, mw, mh = (self.get_nodeattr(k) for k in ("PE", "SIMD", "MW", "MH"))
        return pe * simd, (mw // simd) * (mh // pe)  # width, depth of bitcycle_mvau's weight ROM

    def bram_estimation(self, fpgapart=None):
        """RAMB18s of the weight ROM as bitcycle_mvau builds it: block RAM from 8 kbit up, in the
        cheapest RAMB18 aspect (16K×1 … 512×36); smaller ROMs are distributed (in the LUT count)."""
        width, depth = self._wrom_shape()
        if width * depth < 8192:
            return 0
        return min(math.ceil(width / w) * math.ceil(depth / d)
                   for d, w in ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)))

    def uram_estimation(self, fpgapart=None):
        return 0

    def bram_efficiency_estimation(self, fpgapart=None):
        width, depth = self._wrom_shape()
        n = self.bram_estimation(fpgapart)
        return 1.0 if n == 0 else width * depth / (n * 18432)

    def dsp_estimation(self, fpgapart):
        return 0  # popcounts and shifts: LUT logic only

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


@finn_rtl.register_custom_op
class BitSerialMVAU_rtl(BitSerialMVAU, RTLBackend):  # noqa: N801  (FINN's naming: <op>_rtl)
    """RTL backend: a Verilog top ``<node>_wrapper.v`` (``gen_top_module``) instantiating hw/rtl's
    ``bitcycle_mvau`` with this layer's parameters, weight and threshold images
    (``bitcycle.compile.mvau_rtl``). The hw/rtl sources are one copy per project, in
    ``<codegen>/bitcycle_rtl/`` beside the per-node directories."""

    def get_nodeattr_types(self):
        attrs = BitSerialMVAU.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        # FINN's rtlsim needs Vivado's xsim; `bitcycle rtlsim` simulates the generated files in Verilator.
        BitSerialMVAU.execute_node(self, context, graph)

    def _gen_dir(self) -> Path:
        gen = self.get_nodeattr("code_gen_dir_ipgen")
        if not gen:
            raise BitCycleError(f"layer {self.onnx_node.name}: code_gen_dir_ipgen is not set (run PrepareIP)")
        return Path(gen)

    def shared_dir(self) -> Path:
        return self._gen_dir().parent / R.SHARED_DIR

    def _top(self) -> str:
        return self.get_nodeattr("gen_top_module") or f"{self.onnx_node.name}_wrapper"

    def get_rtl_file_list(self, abspath=False):
        top = self._top()
        if not abspath:
            return [f"{top}.v", *R.MVAU_SOURCES]
        return [self._gen_dir() / f"{top}.v", *(self.shared_dir() / f for f in R.MVAU_SOURCES)]

    def mem_files(self) -> list[Path]:
        top = self._top()
        names = [f"{top}_weights.mem"] + ([] if self.get_nodeattr("noActivation") else [f"{top}_thresholds.mem"])
        return [self._gen_dir() / n for n in names]

    def code_generation_ipi(self):
        # CreateStitchedIP splits each add_files command and wants exactly 3 tokens: one file per command
        files = [*self.get_rtl_file_list(abspath=True), *self.mem_files()]
        return [f"add_files -norecurse {f}" for f in files] + [
            f"create_bd_cell -type module -reference {self.get_nodeattr('gen_top_module')} {self.onnx_node.name}"]

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["axilite"], intf["aximm"] = [], []
        return intf

    def rtl_parameters(self, gen: Path, n_thr: int) -> dict:
        """bitcycle_mvau's parameters for this node (what the wrapper sets)."""
        check_buildable(self)
        idt = DataType[self.get_nodeattr("inputDataType")]
        odt = DataType[self.get_nodeattr("outputDataType")]
        no_act = self.get_nodeattr("noActivation") == 1
        top = self._top()
        act = 0 if (no_act or odt == DataType["BIPOLAR"]) else int(self.get_nodeattr("ActVal"))
        return {"MW": self.get_nodeattr("MW"), "MH": self.get_nodeattr("MH"), "PE": self.get_nodeattr("PE"),
                "SIMD": self.get_nodeattr("SIMD"), "IBITS": idt.bitwidth(),
                "ISIGNED": int(idt.signed() and idt != DataType["BIPOLAR"]),
                "BITS_MAX": max(self.get_nodeattr("bits"), self.get_nodeattr("bits_max")),
                "OBITS": odt.bitwidth(), "ACC_BITS": self.get_nodeattr("acc_bits"),
                "NTHR": 0 if no_act else int(n_thr), "ACT_VAL": act, "OUT_DEPTH": R.OUT_DEPTH,
                "BITS": self.get_nodeattr("bits"),
                "W_FILE": str(gen / f"{top}_weights.mem"),
                "T_FILE": "" if no_act else str(gen / f"{top}_thresholds.mem")}

    def generate_hdl(self, model, fpgapart, clk):
        gen = self._gen_dir().resolve()  # $readmemh needs absolute paths (FINN's RTL ops do the same)
        gen.mkdir(parents=True, exist_ok=True)
        top = f"{self.onnx_node.name}_wrapper"
        self.set_nodeattr("gen_top_module", top)
        R.install_shared(self.shared_dir().resolve())
        w = model.get_initializer(self.onnx_node.input[1])  # [MW, MH] ±1
        (gen / f"{top}_weights.mem").write_text(R.weight_mem_text(w, self.get_nodeattr("PE"), self.get_nodeattr("SIMD")))
        n_thr = 0
        if self.get_nodeattr("noActivation") == 0:
            thr = R.threshold_rows(model.get_initializer(self.onnx_node.input[2]), self.get_nodeattr("MH"),
                                   self.get_nodeattr("acc_bits"))
            n_thr = thr.shape[1]
            (gen / f"{top}_thresholds.mem").write_text(
                R.threshold_mem_text(thr, self.get_nodeattr("PE"), self.get_nodeattr("acc_bits")))
        (gen / f"{top}.v").write_text(R.wrapper_v(top, self.rtl_parameters(gen, n_thr)))
        self.set_nodeattr("ipgen_path", str(gen))
        self.set_nodeattr("ip_path", str(gen))


def check_buildable(inst) -> None:
    """One line naming the layer, the value and the legal choices when the RTL cannot be built."""
    from bitcycle.compile.folding import divisors

    name = inst.onnx_node.name
    mw, mh, pe, simd = (inst.get_nodeattr(k) for k in ("MW", "MH", "PE", "SIMD"))
    if pe < 1 or mh % pe:
        raise BitCycleError(f"layer {name}: PE={pe} does not divide MH={mh}; legal PE: {', '.join(map(str, divisors(mh)))}")
    if simd < 1 or mw % simd:
        raise BitCycleError(f"layer {name}: SIMD={simd} does not divide MW={mw}; legal SIMD: "
                            f"{', '.join(map(str, divisors(mw)))}")
    acc = inst.get_nodeattr("acc_bits")
    if not 2 <= acc <= 32:
        raise BitCycleError(f"layer {name}: acc_bits={acc} is outside the RTL's 2..32")
    bits = inst.get_nodeattr("bits")
    if not 1 <= bits <= MAX_BITS:
        raise BitCycleError(f"layer {name}: bits={bits} is outside 1..{MAX_BITS}")


def rtl_sources() -> list[str]:
    """hw/rtl files a generated layer compiles with (shared, one copy per project)."""
    return list(R.MVAU_SOURCES)


class MapToBitSerialMVAU(Transformation):
    """Each FINN MVAU with ±1 weights and an integer/binary input of ≤ bits_max bits becomes a
    BitSerialMVAU (thresholds moved to the signed-sum domain, the XNOR compensation after a
    last layer absorbed). Others (e.g. 8-bit weights) stay FINN MVAUs."""

    def __init__(self, bits_min: int = 1, bits_max: int = MAX_BITS):
        super().__init__()
        self.bits_min, self.bits_max = bits_min, bits_max

    def apply(self, model):
        from qonnx.custom_op.registry import getCustomOp

        graph = model.graph
        for idx, node in enumerate(list(graph.node)):
            if node.op_type != "MVAU":
                continue
            inst = getCustomOp(node)
            w = model.get_initializer(node.input[1])
            xnor = inst.get_nodeattr("binaryXnorMode") == 1
            w_pm = (2 * w - 1) if xnor else w
            if not np.all(np.abs(w_pm) == 1):
                continue  # not binary weights: FINN's own MVAU serves it
            in_dt = DataType[inst.get_nodeattr("inputDataType")]
            bits = engine_bits(in_dt)
            if bits > self.bits_max:
                continue
            mw = inst.get_nodeattr("MW")
            acc_bits = acc_bits_for(mw, in_dt)
            inputs = [node.input[0], node.input[1]]
            model.set_initializer(node.input[1], w_pm.astype(np.float32))
            model.set_tensor_datatype(node.input[1], DataType["BIPOLAR"])
            out_tensor = node.output[0]
            removed = []
            no_act = inst.get_nodeattr("noActivation")
            odt = inst.get_nodeattr("outputDataType")
            if not no_act:
                thr = model.get_initializer(node.input[2])
                if xnor:
                    thr = 2 * thr - mw
                model.set_initializer(node.input[2], thr.astype(np.float32))
                tbits = max(2, int(np.abs(thr).max()).bit_length() + 1)  # signed; never BIPOLAR (no 0 in it)
                model.set_tensor_datatype(node.input[2], DataType[f"INT{tbits}"])
                inputs.append(node.input[2])
            elif xnor:
                # popcount → signed sum: absorb the Mul(2) and Add(−MW) FINN left after the layer
                mul = model.find_consumer(out_tensor)
                add = model.find_consumer(mul.output[0]) if mul is not None and mul.op_type == "Mul" else None
                ok = (mul is not None and mul.op_type == "Mul" and add is not None and add.op_type == "Add"
                      and np.all(model.get_initializer(mul.input[1]) == 2)
                      and np.all(model.get_initializer(add.input[1]) == -mw))
                if not ok:
                    raise BitCycleError(f"layer {node.name}: expected the XNOR compensation ·2 − {mw} after it; "
                                        "the graph was changed between FINN passes — re-run the whole flow")
                out_tensor = add.output[0]
                removed = [mul, add]
            if no_act:  # raw sums leave as INT<acc_bits>: the saturated sum's own range (±MW for XNOR)
                cur = DataType[odt]
                if xnor or not (cur.is_integer() and cur.signed() and cur.bitwidth() >= acc_bits):
                    odt = f"INT{acc_bits}"
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            for key in ("binaryXnorMode", "weightDataType", "outputDataType", "accDataType", "mem_mode"):
                attrs.pop(key, None)
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
            new = helper.make_node("BitSerialMVAU", inputs, [out_tensor], name=node.name,
                                   domain="finn.custom_op.fpgadataflow", **attrs,
                                   weightDataType="BIPOLAR", outputDataType=odt, mem_mode="internal_embedded",
                                   accDataType=f"INT{acc_bits}", binaryXnorMode=0, bits=bits,
                                   bits_min=self.bits_min, bits_max=self.bits_max, acc_bits=acc_bits)
            graph.node.insert(idx, new)
            graph.node.remove(node)
            for r in removed:
                graph.node.remove(r)
            model.set_tensor_datatype(out_tensor, DataType[odt])
            return model, True  # node list changed: FINN's transform loop calls us again
        return model, False
