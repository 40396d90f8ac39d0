"""The RTL backend's generated layer (``<layer>_wrapper.sv`` around hw/rtl's ``bitcycle_engine``)
computes exactly what the FINN node ``BitSerialMVAU_rtl`` computes in ``execute_node`` (the golden
model): weights and thresholds from the node's initializers, random input vectors, cocotb on
Verilator. Two layers: a hidden XNOR layer (binary input, threshold output) and a first layer
(8-bit input, raw accumulator output)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

PART = "xc7z020clg400-1"
ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "hidden": dict(MW=64, MH=8, PE=4, SIMD=16, inputDataType="BINARY", outputDataType="BINARY", bits=1,
                   acc_bits=8, noActivation=0),
    "first": dict(MW=32, MH=4, PE=2, SIMD=8, inputDataType="INT8", outputDataType="INT14", bits=8,
                  acc_bits=14, noActivation=1),
}
VECTORS = 6


def make_layer(case: str, gen_dir: Path, seed: int):
    """A one-node FINN graph with a BitSerialMVAU_rtl; returns (model, node, inst, inputs, outputs)."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.util.basic import qonnx_make_model

    import bitcycle.compile.customop  # noqa: F401  (registers the op)

    a = CASES[case]
    rng = np.random.default_rng(seed)
    mw, mh = a["MW"], a["MH"]
    x_t = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, mw])
    y_t = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, mh])
    inputs = ["x", "w"] + ([] if a["noActivation"] else ["t"])
    node = helper.make_node("BitSerialMVAU_rtl", inputs, ["y"], name=f"L_{case}",
                            domain="finn.custom_op.fpgadataflow.rtl", backend="fpgadataflow",
                            weightDataType="BIPOLAR", code_gen_dir_ipgen=str(gen_dir), **a)
    model = ModelWrapper(qonnx_make_model(helper.make_graph([node], "g", [x_t], [y_t])))
    w = np.where(rng.random((mw, mh)) > 0.5, 1.0, -1.0).astype(np.float32)
    model.set_initializer("w", w)
    model.set_tensor_datatype("w", DataType["BIPOLAR"])
    if not a["noActivation"]:
        model.set_initializer("t", rng.integers(-mw // 4, mw // 4, size=(mh, 1)).astype(np.float32))
    model.set_tensor_datatype("x", DataType[a["inputDataType"]])
    inst = getCustomOp(model.graph.node[0])
    if a["bits"] == 1:
        xs = rng.integers(0, 2, size=(VECTORS, mw))  # BINARY codes of bipolar values
    else:
        xs = rng.integers(-128, 128, size=(VECTORS, mw))
        xs[0] = -128  # extremes: the largest sums the accumulator must hold
        xs[1] = 127
    outs = []
    for x in xs:
        ctx = {"x": x.reshape(1, mw).astype(np.float32), "w": w, "y": np.zeros((1, mh), np.float32)}
        if not a["noActivation"]:
            ctx["t"] = model.get_initializer("t")
        inst.execute_node(ctx, model.graph)
        outs.append(ctx["y"].reshape(-1))
    return model, node, inst, xs, np.array(outs)


# ------------------------------------------------------------------------------- cocotb side
try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge, with_timeout
except ImportError:  # pragma: no cover - cocotb is in the dev venv
    cocotb = None

if cocotb is not None:

    @cocotb.test()
    async def generated_layer_matches_node(dut):
        from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

        import bitcycle.golden.stream as st

        data = np.load(os.environ["BITCYCLE_LAYER_CASE"])
        a = CASES[str(data["case"])]
        geo = st.Geometry(pe=a["PE"], simd=a["SIMD"], data_width=32, thr_max=1)
        source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "in0_V"), dut.ap_clk, dut.ap_rst_n,
                                 reset_active_level=False)
        sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "out0_V"), dut.ap_clk, dut.ap_rst_n,
                             reset_active_level=False)
        rng = random.Random(int(data["seed"]))
        cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
        dut.ap_rst_n.value = 0
        dut.start.value = 0
        dut.cfg_bits.value = a["bits"]
        dut.cfg_mode.value = 0
        await ClockCycles(dut.ap_clk, 3)
        dut.ap_rst_n.value = 1
        await ClockCycles(dut.ap_clk, 2)

        async def job(mode, words, expect_output):
            await FallingEdge(dut.ap_clk)
            dut.cfg_mode.value = mode
            dut.start.value = 1
            await FallingEdge(dut.ap_clk)
            dut.start.value = 0
            await source.send(AxiStreamFrame(st.words_to_bytes(words, geo)))
            for _ in range(20_000):
                await ClockCycles(dut.ap_clk, 4)
                if not int(dut.busy.value):
                    break
            assert int(dut.done.value) == 1, f"mode {mode}: engine did not finish"
            if expect_output:
                frame = await with_timeout(sink.recv(), 5000, "ns")
                return st.bytes_to_words(bytes(frame.tdata), geo)
            return None

        w_mk = data["w"].T.astype(np.int8)  # node weights [MW, MH] → engine W [M, K]
        await job(st.MODE_LOAD_WEIGHTS, st.pack_binary_tiles(w_mk, geo), False)
        if not a["noActivation"]:
            await job(st.MODE_LOAD_THRESHOLDS, st.pack_thresholds(data["t"].astype(np.int64), geo), False)
        for i, x in enumerate(data["xs"]):
            ints = (2 * x - 1) if a["bits"] == 1 else x
            if rng.random() < 0.5:
                sink.pause = True  # backpressure for a while: the layer must hold its result
                cocotb.start_soon(_release(sink, dut))
            words = await job(st.MODE_FORWARD, st.pack_input(st.MODE_FORWARD, geo, a["bits"], ints=ints[:, None]), True)
            got = st.unpack_output(words, st.MODE_FORWARD, geo, a["MH"], a["MW"], 1)[:, 0]
            assert np.array_equal(got, data["expected"][i]), f"vector {i}: RTL {got.tolist()} node {data['expected'][i].tolist()}"
        dut._log.info("generated %s layer: %d vectors bit-exact with the FINN node", data["case"], len(data["xs"]))

    async def _release(sink, dut):
        await ClockCycles(dut.ap_clk, 40)
        sink.pause = False


# --------------------------------------------------------------------------------- pytest side
@pytest.mark.rtl
@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_layer_matches_node_in_verilator(case, tmp_path):
    import shutil
    import sys

    from cocotb_tools.runner import get_runner

    venv_bin = str(Path(sys.executable).parent)
    os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    if shutil.which("verilator") is None:
        pytest.skip("verilator not on PATH (make setup links it into .venv/bin)")
    seed = int(os.environ.get("BITCYCLE_SEED", random.randrange(1 << 16)))
    print(f"seed={seed}")
    gen = tmp_path / "gen"
    model, node, inst, xs, expected = make_layer(case, gen, seed)
    inst.generate_hdl(model, PART, 10.0)
    sources = [gen / f for f in inst.get_rtl_file_list()]
    assert all(p.is_file() for p in sources)
    case_file = tmp_path / "case.npz"
    extra = {"t": model.get_initializer("t")} if len(node.input) > 2 else {"t": np.zeros((1, 1))}
    np.savez(case_file, case=case, seed=seed, w=model.get_initializer("w"), xs=xs, expected=expected, **extra)
    runner = get_runner("verilator")
    runner.build(sources=sources, hdl_toplevel=f"{node.name}_wrapper", build_dir=tmp_path / "sim",
                 build_args=["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"], timescale=("1ns", "1ps"))
    results = runner.test(hdl_toplevel=f"{node.name}_wrapper", test_module="test_compile_rtl",
                          test_dir=tmp_path, build_dir=tmp_path / "sim", seed=seed,
                          extra_env={"PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "sw"),
                                                                    os.environ.get("PYTHONPATH", "")]),
                                     "BITCYCLE_LAYER_CASE": str(case_file)},
                          results_xml=str(tmp_path / "results.xml"))
    import xml.etree.ElementTree as ET

    cases = list(ET.parse(results).iter("testcase"))
    assert cases and not any(c.find("failure") is not None or c.find("error") is not None for c in cases), \
        f"generated {case} layer differs from the FINN node (seed {seed}); see {tmp_path}"
