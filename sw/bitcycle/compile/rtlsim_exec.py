"""``exec_mode`` "rtlsim" for BitSerialMVAU, as FINN does it for its layers: :func:`prepare_rtlsim`
(FINN's PrepareIP + PrepareRTLSim in one) generates each node's RTL — exactly what
``BitSerialMVAU_rtl.generate_hdl`` gives the vendor flow — builds it once in Verilator and stores
the simulation's path in the node's ``rtlsim_so``; ``execute_node`` under exec_mode rtlsim then
streams the node's input through that simulation (:func:`execute_rtlsim`) instead of the golden
model, so ``execute_onnx`` on such a graph checks the RTL.

A generic BitSerialMVAU (the engine stage's graph) gets its RTL in ``work/<node>/`` at the node's
current PE/SIMD; a BitSerialMVAU_rtl keeps the files its ``code_gen_dir_ipgen`` already holds. A
build is reused while the Verilog sources hash the same (``rtlsim_build/sources.sha256``); the
memory images are read by ``$readmemh`` when the simulation starts, so they need no rebuild.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bitcycle.compile import verilate as V
from bitcycle.errors import BitCycleError

MVAU_OPS = ("BitSerialMVAU", "BitSerialMVAU_rtl")
POOL_OPS = ("BitCycleMaxPool", "BitCycleMaxPool_rtl")
RTLSIM_OPS = MVAU_OPS + POOL_OPS
STAMP = "sources.sha256"


def _sources_hash(top: str, files: list[Path]) -> str:
    h = hashlib.sha256(top.encode())
    for f in files:
        h.update(str(f).encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def build_cached(top: str, files: list[Path], build_dir: Path) -> Path:
    """V.build unless ``build_dir`` already holds a simulation of the same sources."""
    build_dir = Path(build_dir)
    digest = _sources_hash(top, files)
    stamp, exe = build_dir / STAMP, build_dir / "Vtop"
    if exe.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return exe
    stamp.unlink(missing_ok=True)
    exe = V.build(top, files, build_dir)
    stamp.write_text(digest + "\n")
    return exe


def _rtl_view(model, node, work: Path | None):
    """The node's RTL backend with its files generated: the node's own (BitSerialMVAU_rtl or
    BitCycleMaxPool_rtl after PrepareIP), or, for a generic node, generated into ``work/<node>/``."""
    from qonnx.custom_op.registry import getCustomOp

    from bitcycle.compile.bitserial_rtl import BitSerialMVAU_rtl
    from bitcycle.compile.maxpool_op import BitCycleMaxPool_rtl

    inst = getCustomOp(node)
    backend = BitSerialMVAU_rtl if node.op_type in MVAU_OPS else BitCycleMaxPool_rtl
    if isinstance(inst, backend):
        if not inst.get_nodeattr("gen_top_module"):
            raise BitCycleError(f"layer {node.name}: no generated RTL (gen_top_module unset); run PrepareIP first")
        return inst
    if work is None:
        raise BitCycleError(f"layer {node.name} is a generic {node.op_type}: prepare_rtlsim needs a work directory "
                            "to generate its RTL in")
    rtl = backend(node)  # the same node through the RTL backend: its generate_hdl, its file list
    rtl.set_nodeattr("code_gen_dir_ipgen", str((Path(work) / node.name).resolve()))
    rtl.generate_hdl(model, None, None)
    return rtl


def prepare_rtlsim(model, work: Path | None = None):
    """Every BitSerialMVAU(_rtl) and BitCycleMaxPool(_rtl) of ``model``: RTL generated (generic nodes, into ``work``), built in
    Verilator (once; cached), ``rtlsim_so`` = the simulation, ``exec_mode`` = rtlsim. In place."""
    from qonnx.custom_op.registry import getCustomOp

    for node in model.graph.node:
        if node.op_type not in RTLSIM_OPS:
            continue
        rtl = _rtl_view(model, node, work)
        files = [Path(f) for f in rtl.get_rtl_file_list(abspath=True)]
        exe = build_cached(rtl.get_nodeattr("gen_top_module"), files, rtl._gen_dir() / "rtlsim_build")
        inst = getCustomOp(node)
        inst.set_nodeattr("rtlsim_so", str(exe))
        inst.set_nodeattr("exec_mode", "rtlsim")
    return model


def set_exec_mode(model, mode: str):
    """exec_mode of every node with an rtlsim mode ("" / cppsim: the golden model; rtlsim: Verilator)."""
    from qonnx.custom_op.registry import getCustomOp

    for node in model.graph.node:
        if node.op_type in RTLSIM_OPS:
            getCustomOp(node).set_nodeattr("exec_mode", mode)
    return model


def execute_rtlsim(inst, context) -> np.ndarray:
    """The node's output for ``context``'s input, computed by its Verilated RTL (``rtlsim_so``):
    the input vectors streamed in SIMD elements a beat, MH/PE output beats of PE elements each."""
    from qonnx.core.datatype import DataType

    node = inst.onnx_node
    exe = inst.get_nodeattr("rtlsim_so")
    if not exe or not Path(exe).is_file():
        raise BitCycleError(f"layer {node.name}: exec_mode is rtlsim but no Verilator simulation is built "
                            f"(rtlsim_so={exe!r}); run bitcycle.compile.rtlsim_exec.prepare_rtlsim on the graph first")
    mw, mh, pe, simd = (inst.get_nodeattr(k) for k in ("MW", "MH", "PE", "SIMD"))
    idt, odt = DataType[inst.get_nodeattr("inputDataType")], DataType[inst.get_nodeattr("outputDataType")]
    x = np.rint(np.asarray(context[node.input[0]])).astype(np.int64).reshape(-1, mw)
    if idt == DataType["BIPOLAR"]:
        x = (x + 1) // 2  # a bipolar stream carries 1 for +1, 0 for −1
    vectors = x.shape[0]
    got, cycles = V.run(Path(exe), V.pack(x, idt.bitwidth(), simd), vectors * (mh // pe),
                        Path(exe).parent.parent / "rtlsim_run")
    bipolar_out = odt == DataType["BIPOLAR"]
    y = V.unpack(got, odt.bitwidth(), pe, odt.signed() and not bipolar_out).reshape(vectors, mh)
    if bipolar_out:
        y = 2 * y - 1
    inst.set_nodeattr("cycles_rtlsim", int(cycles[-1]) if len(cycles) else 0)
    return y


def execute_maxpool_rtlsim(inst, context) -> np.ndarray:
    """A max-pool's output computed by its Verilated ``bitcycle_maxpool``: PE channels a beat, K·K
    consecutive beats per channel fold (the depthwise window's stream). The generic node's input is
    im2col's [pixels, K·K, channels], reordered into that stream; BitCycleMaxPool_rtl's already is
    it. Returns 0/1 codes, [pixels · channels/PE, PE] (the channel order of both layouts' outputs)."""
    from bitcycle.compile.maxpool_op import BitCycleMaxPool_rtl, _k2

    node = inst.onnx_node
    exe = inst.get_nodeattr("rtlsim_so")
    if not exe or not Path(exe).is_file():
        raise BitCycleError(f"layer {node.name}: exec_mode is rtlsim but no Verilator simulation is built "
                            f"(rtlsim_so={exe!r}); run bitcycle.compile.rtlsim_exec.prepare_rtlsim on the graph first")
    ch, pe, k2 = inst.get_nodeattr("Channels"), inst.get_nodeattr("PE"), _k2(inst)
    bits = np.rint(np.asarray(context[node.input[0]])).astype(np.int64)
    if inst.get_nodeattr("InputDataType") == "BIPOLAR":
        bits = (bits + 1) // 2  # ±1 → 0/1
    if not isinstance(inst, BitCycleMaxPool_rtl):  # im2col [pixels, K·K, C] → [pixels, C/PE, K·K, PE]
        bits = bits.reshape(-1, k2, ch // pe, pe).transpose(0, 2, 1, 3)
    beats = V.pack(bits.reshape(-1, pe), 1, pe)
    n_out = len(beats) // k2
    got, cycles = V.run(Path(exe), beats, n_out, Path(exe).parent.parent / "rtlsim_run")
    inst.set_nodeattr("cycles_rtlsim", int(cycles[-1]) if len(cycles) else 0)
    return V.unpack(got, 1, pe, False).reshape(n_out, pe)
