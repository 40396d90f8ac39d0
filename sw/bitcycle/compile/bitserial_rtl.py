"""``BitSerialMVAU_rtl``: the RTL backend of :class:`~bitcycle.compile.bitserial_op.BitSerialMVAU`.

``generate_hdl`` writes, per node, a Verilog top ``<node>_wrapper.v`` (``gen_top_module``,
:mod:`bitcycle.compile.mvau_rtl`) instantiating hw/rtl's ``bitcycle_mvau`` with this layer's
parameters, and the weight / threshold images it loads (:mod:`bitcycle.compile.mvau_images`). The
hw/rtl sources are one copy per project, in ``<codegen>/bitcycle_rtl/`` beside the per-node
directories. Importing this module registers the backend with FINN
(``finn.custom_op.fpgadataflow.rtl``), so ``SpecializeLayers`` picks it.
"""

from __future__ import annotations

from pathlib import Path

from qonnx.core.datatype import DataType

import finn.custom_op.fpgadataflow.rtl as finn_rtl
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from bitcycle.compile import mvau_images as images
from bitcycle.compile import mvau_rtl as R
from bitcycle.compile.bitserial_op import BitSerialMVAU
from bitcycle.compile.rtl_layer import GeneratedRtl
from bitcycle.errors import BitCycleError
from bitcycle.golden.bitserial import MAX_BITS


# MVAU ram_style values bitcycle_mvau builds: auto/block = block RAM from 8 kbit up, distributed = LUT logic
ROM_STYLES = ("auto", "block", "distributed")


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
    lanes = inst.get_nodeattr("wrom_lut_pe")
    if not 0 <= lanes <= pe:
        raise BitCycleError(f"layer {name}: wrom_lut_pe={lanes} is not a count of its PE={pe} lanes (weights in "
                            f"LUT logic); legal: 0..{pe}")
    style = inst.get_nodeattr("ram_style")
    if style not in ROM_STYLES:
        raise BitCycleError(f"layer {name}: ram_style={style!r} has no weight ROM in bitcycle_mvau; legal: "
                            f"{', '.join(ROM_STYLES)} (the xc7 parts have no UltraRAM)")


@finn_rtl.register_custom_op
class BitSerialMVAU_rtl(GeneratedRtl, BitSerialMVAU, RTLBackend):  # noqa: N801  (FINN's naming: <op>_rtl)
    """RTL backend: Verilog wrapper top + memory images per node, hw/rtl's bitcycle_mvau shared."""

    SOURCES = R.MVAU_SOURCES

    def get_nodeattr_types(self):
        attrs = BitSerialMVAU.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        # exec_mode rtlsim: the generated files in Verilator (rtlsim_exec.prepare_rtlsim builds them;
        # FINN's own rtlsim would need Vivado's xsim); otherwise the golden model
        BitSerialMVAU.execute_node(self, context, graph)

    def mem_files(self) -> list[Path]:
        """The images bitcycle_mvau's $readmemh loads (W_FILE, and T_FILE unless noActivation)."""
        top = self._top()
        names = [f"{top}_weights.mem"] if self.lut_lanes() < self.get_nodeattr("PE") else []
        names += [f"{top}_weights_lut.mem"] if self.lut_lanes() else []
        names += [] if self.get_nodeattr("noActivation") else [f"{top}_thresholds.mem"]
        return [self._gen_dir() / n for n in names]

    def ipi_extra_files(self) -> list[Path]:
        return self.mem_files()

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
                # the wrapper ties bits_i to the node's bits, so the layer is built for exactly that
                # width: a wider BITS_MAX would be plane and accumulator logic nothing can reach
                "BITS_MAX": self.get_nodeattr("bits"),
                "OBITS": odt.bitwidth(), "ACC_BITS": self.get_nodeattr("acc_bits"),
                "NTHR": 0 if no_act else int(n_thr), "ACT_VAL": act, "OUT_DEPTH": R.OUT_DEPTH,
                "THR_INIT": int(self._thr_init(n_thr)),
                "WROM_LUT_PE": self.lut_lanes(),
                "BITS": self.get_nodeattr("bits"),
                "W_FILE": str(gen / f"{top}_weights.mem") if self.lut_lanes() < self.get_nodeattr("PE") else "",
                "WL_FILE": str(gen / f"{top}_weights_lut.mem") if self.lut_lanes() else "",
                "T_FILE": "" if no_act else str(gen / f"{top}_thresholds.mem")}

    def _thr_init(self, n_thr: int) -> bool:
        return images.thr_init_applies(self.get_nodeattr("bits"), n_thr, self.get_nodeattr("MW"),
                                       self.get_nodeattr("acc_bits"))

    def generate_hdl(self, model, fpgapart, clk):
        gen, top = self.start_hdl()
        w = model.get_initializer(self.onnx_node.input[1])  # [MW, MH] ±1
        pe = self.get_nodeattr("PE")
        simd, lut = self.get_nodeattr("SIMD"), self.lut_lanes()
        if lut < pe:  # the block-RAM lanes' image, and the LUT lanes' (see rtl_parameters)
            (gen / f"{top}_weights.mem").write_text(images.weight_mem_text(w, pe, simd, range(0, pe - lut)))
        if lut:
            (gen / f"{top}_weights_lut.mem").write_text(images.weight_mem_text(w, pe, simd, range(pe - lut, pe)))
        n_thr = 0
        if self.get_nodeattr("noActivation") == 0:
            acc = self.get_nodeattr("acc_bits")
            thr = images.threshold_rows(model.get_initializer(self.onnx_node.input[2]), self.get_nodeattr("MH"), acc)
            n_thr = thr.shape[1]
            if self._thr_init(n_thr):
                thr = images.start_values(thr, self.get_nodeattr("MW"))
            (gen / f"{top}_thresholds.mem").write_text(images.threshold_mem_text(thr, pe, acc))
        (gen / f"{top}.v").write_text(R.wrapper_v(top, self.rtl_parameters(gen, n_thr)))
        self.finish_hdl(gen)
