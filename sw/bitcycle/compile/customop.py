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
import shutil
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

from bitcycle.errors import BitCycleError
from bitcycle.golden.bitserial import MAX_BITS, bitserial_matmul

# LUT cost of one generated layer (hw/hls/bitcycle_finn_layer.sv around hw/rtl/bitcycle_engine.sv),
# measured by `bitcycle bench compile-lut` (Yosys 0.23 `synth_xilinx`, xc7, 2026-11-25, LUTs +
# LUTRAM): PE×SIMD 4×16 acc 8 → 2,532; 2×8 acc 14 → 2,239; 8×8 acc 9 → 2,205; 8×32 acc 10 → 5,430.
# Least-squares fit: fixed control/output stage, per cell, per accumulator lane-bit. The engine
# is still changing: re-run the bench and update these when it does.
ENGINE_LUT_FIXED = 1180.7
ENGINE_LUT_PER_CELL = 6.47
ENGINE_LUT_PER_ACC_BIT = 8.06


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
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        acc = min(32, self.get_nodeattr("acc_bits"))
        return int(math.ceil(ENGINE_LUT_FIXED + ENGINE_LUT_PER_CELL * pe * simd
                             + ENGINE_LUT_PER_ACC_BIT * max(pe, simd) * acc))

    def _n_thresholds(self) -> int:
        odt = DataType[self.get_nodeattr("outputDataType")]
        return max(1, 2 ** odt.bitwidth() - 1)

    def dsp_estimation(self, fpgapart):
        return 0  # popcounts and shifts: LUT logic only

    def get_weight_datatype(self):
        return DataType["BIPOLAR"]


@finn_rtl.register_custom_op
class BitSerialMVAU_rtl(BitSerialMVAU, RTLBackend):  # noqa: N801  (FINN's naming: <op>_rtl)
    """RTL backend: a SystemVerilog wrapper instantiating hw/rtl's ``bitcycle_engine`` with this
    layer's parameters, its weight image (``.mem``, one PE×SIMD tile per line) and thresholds."""

    def get_nodeattr_types(self):
        attrs = BitSerialMVAU.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        # "cppsim"/"rtlsim" of FINN need Vivado; the golden model is the bit-exact reference.
        BitSerialMVAU.execute_node(self, context, graph)

    def get_rtl_file_list(self, abspath=False):
        gen = Path(self.get_nodeattr("code_gen_dir_ipgen") or ".")
        names = [f"{self.onnx_node.name}_wrapper.sv", LAYER_SOURCE, *rtl_sources()]
        return [gen / n for n in names] if abspath else names

    def code_generation_ipi(self):
        gen = self.get_nodeattr("code_gen_dir_ipgen")
        files = " ".join(f"{gen}/{f}" for f in self.get_rtl_file_list())
        mems = " ".join(f"{gen}/{self.onnx_node.name}_{k}.mem" for k in ("wwords", "twords"))
        name = self.onnx_node.name
        return [f"add_files -norecurse {files} {mems}",
                f"create_bd_cell -type module -reference {name}_wrapper {name}"]

    def _images(self, model):
        """Engine words of the weight tiles and thresholds (bitcycle.golden.stream's packers)."""
        import bitcycle.golden.stream as st

        geo = st.Geometry(pe=self.get_nodeattr("PE"), simd=self.get_nodeattr("SIMD"), data_width=32,
                          thr_max=self._thr_max())
        w = model.get_initializer(self.onnx_node.input[1])  # [MW, MH] ±1
        wwords = st.pack_binary_tiles(np.asarray(w.T, dtype=np.int8), geo)
        twords = np.zeros(0, dtype=np.uint64)
        if self.get_nodeattr("noActivation") == 0:
            thr = np.asarray(model.get_initializer(self.onnx_node.input[2]), dtype=np.int64)
            if thr.shape[0] == 1 and self.get_nodeattr("MH") > 1:
                thr = np.repeat(thr, self.get_nodeattr("MH"), axis=0)
            twords = st.pack_thresholds(thr, geo)
        return wwords, twords

    def _thr_max(self) -> int:
        return 1 if self.get_nodeattr("noActivation") else self._n_thresholds()

    def generate_hdl(self, model, fpgapart, clk):
        gen = Path(self.get_nodeattr("code_gen_dir_ipgen")).resolve()  # $readmemh needs absolute paths
        gen.mkdir(parents=True, exist_ok=True)
        for src in rtl_sources():
            shutil.copy(rtl_dir() / src, gen / src)
        shutil.copy(rtl_dir().parent / "hls" / LAYER_SOURCE, gen / LAYER_SOURCE)
        w = model.get_initializer(self.onnx_node.input[1])
        name = self.onnx_node.name
        (gen / f"{name}_weights.mem").write_text(weight_mem_text(w, self.get_nodeattr("PE"), self.get_nodeattr("SIMD")))
        wwords, twords = self._images(model)
        (gen / f"{name}_wwords.mem").write_text("".join(f"{int(v):08x}\n" for v in wwords))
        (gen / f"{name}_twords.mem").write_text("".join(f"{int(v):08x}\n" for v in twords) or "00000000\n")
        (gen / f"{name}_wrapper.sv").write_text(self.wrapper_sv(len(wwords), len(twords), gen))
        self.set_nodeattr("ipgen_path", str(gen))

    def wrapper_sv(self, w_words: int, t_words: int, gen: Path) -> str:
        g = {k: self.get_nodeattr(k) for k in ("PE", "SIMD", "MW", "MH", "bits", "acc_bits", "noActivation")}
        name = self.onnx_node.name
        idt = DataType[self.get_nodeattr("inputDataType")]
        odt = DataType[self.get_nodeattr("outputDataType")]
        ibits, obits = idt.bitwidth(), odt.bitwidth()
        return WRAPPER_TEMPLATE.format(
            name=name, pe=g["PE"], simd=g["SIMD"], mw=g["MW"], mh=g["MH"], bits=g["bits"],
            ibits=ibits, isigned=int(idt.signed() and idt != DataType["BIPOLAR"]), obits=obits,
            acc=min(32, g["acc_bits"]), thr=self._thr_max(), out_sel=0 if g["noActivation"] else 2,
            w_words=w_words, t_words=t_words, w_file=gen / f"{name}_wwords.mem", t_file=gen / f"{name}_twords.mem",
            inw=((g["SIMD"] * ibits + 7) // 8) * 8, outw=((g["PE"] * obits + 7) // 8) * 8)


LAYER_SOURCE = "bitcycle_finn_layer.sv"  # hw/hls: FINN streams ↔ engine jobs


def rtl_sources() -> list[str]:
    """hw/rtl files the wrapper compiles with: every .sv there, packages first (the engine's
    own file list changes as the engine grows; the wrapper names only bitcycle_engine)."""
    files = sorted(p.name for p in rtl_dir().glob("*.sv"))
    return [f for f in files if f.endswith("_pkg.sv")] + [f for f in files if not f.endswith("_pkg.sv")]

WRAPPER_TEMPLATE = """\
// Generated by bitcycle.compile for FINN layer {name}: MW={mw} MH={mh} PE={pe} SIMD={simd}, bits={bits}.
// FINN-facing streams; hw/hls/bitcycle_finn_layer.sv runs the layer on hw/rtl's bitcycle_engine,
// loading the weight/threshold images below after reset.
module {name}_wrapper (
  input  logic              ap_clk,
  input  logic              ap_rst_n,
  input  logic [{inw}-1:0]  in0_V_tdata,
  input  logic              in0_V_tvalid,
  output logic              in0_V_tready,
  output logic [{outw}-1:0] out0_V_tdata,
  output logic              out0_V_tvalid,
  input  logic              out0_V_tready
);
  logic ready;  // weights loaded (not a FINN port)
  bitcycle_finn_layer #(
    .MW({mw}), .MH({mh}), .PE({pe}), .SIMD({simd}), .IBITS({ibits}), .ISIGNED({isigned}), .BITS({bits}),
    .OBITS({obits}), .ACC_BITS({acc}), .THR_MAX({thr}), .OUT_SEL({out_sel}),
    .W_WORDS({w_words}), .T_WORDS({t_words}), .W_FILE("{w_file}"), .T_FILE("{t_file}")
  ) u_layer (
    .ap_clk(ap_clk), .ap_rst_n(ap_rst_n), .bits_i(5'd{bits}), .ready_o(ready),
    .in0_V_tdata(in0_V_tdata), .in0_V_tvalid(in0_V_tvalid), .in0_V_tready(in0_V_tready),
    .out0_V_tdata(out0_V_tdata), .out0_V_tvalid(out0_V_tvalid), .out0_V_tready(out0_V_tready)
  );
  logic unused_ready;
  assign unused_ready = ready;
endmodule
"""


def rtl_dir() -> Path:
    """hw/rtl of the source tree (the package is installed editable from the repository)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "hw" / "rtl").is_dir():
            return parent / "hw" / "rtl"
    raise BitCycleError("hw/rtl not found next to the bitcycle package; run from a source checkout (pip install -e .)")


def weight_mem_text(w: np.ndarray, pe: int, simd: int) -> str:
    """Weight image: W [MW, MH] (±1 or 0/1) → one hex line per PE×SIMD tile, FINN's folding order
    (neuron fold outer, synapse fold inner); bit i·SIMD + j = weight of row pe_i, lane j (1 = +1)."""
    bits = (np.asarray(w) > 0).astype(np.uint8).T  # [MH, MW]
    mh, mw = bits.shape
    lines = []
    width = pe * simd
    for nf in range(mh // pe):
        for sf in range(mw // simd):
            tile = bits[nf * pe:(nf + 1) * pe, sf * simd:(sf + 1) * simd].reshape(-1)
            value = int("".join(str(b) for b in tile[::-1]), 2)
            lines.append(f"{value:0{(width + 3) // 4}x}")
    return "\n".join(lines) + "\n"


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
                model.set_tensor_datatype(node.input[2], DataType.get_smallest_possible(-int(np.abs(thr).max()) - 1))
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
                odt = DataType.get_smallest_possible(-mw).name
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            for key in ("binaryXnorMode", "weightDataType", "outputDataType", "accDataType"):
                attrs.pop(key, None)
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
            new = helper.make_node("BitSerialMVAU", inputs, [out_tensor], name=node.name,
                                   domain="finn.custom_op.fpgadataflow", **attrs,
                                   weightDataType="BIPOLAR", outputDataType=odt,
                                   accDataType=f"INT{acc_bits}", binaryXnorMode=0, bits=bits,
                                   bits_min=self.bits_min, bits_max=self.bits_max, acc_bits=acc_bits)
            graph.node.insert(idx, new)
            graph.node.remove(node)
            for r in removed:
                graph.node.remove(r)
            model.set_tensor_datatype(out_tensor, DataType[odt])
            return model, True  # node list changed: FINN's transform loop calls us again
        return model, False
