"""The generated BitSerialMVAU_rtl layers of every zoo model, as the vendor flow receives them
(each node's ``get_rtl_file_list``: its Verilog wrapper top + the project's one copy of hw/rtl's
bitcycle_mvau), built in Verilator and run bit-exact against the node's ``execute_node`` (the
golden model) on random vectors, with input gaps and output backpressure; cycles per vector
measured with the stream always flowing, against ``get_exp_cycles`` per vector.

Models come from ``bitcycle compile`` at the pynq-z2 default folding (untrained weights, random
images). In ``make test``: every MLP layer and the CNV layers with awkward folds; the rest under
``-m slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # name → bitcycle compile arguments
    "tfc": ["--model", "tfc"],
    "sfc": ["--model", "sfc"],
    "lfc": ["--model", "lfc"],
    "cnv": ["--model", "cnv"],
    "cnv-fmnist": ["--model", str(ROOT / "models" / "cnv-fmnist.toml")],
}
FAST_CNV_LAYERS = {"cnv": ["BitSerialMVAU_rtl_0", "BitSerialMVAU_rtl_2"]}  # MW 27 (8-bit) and 576


_COMPILED: dict[str, Path] = {}


def compiled(name: str, tmp_root: Path) -> Path:
    """build/ of one zoo model (compiled once per session)."""
    if name not in _COMPILED:
        out = tmp_root / name
        done = subprocess.run([sys.executable, "-m", "bitcycle.cli", "compile", *MODELS[name], "--dataset", "random",
                               "--check-images", "2", "--part", "pynq-z2", "--out", str(out)],
                              capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, PYTHONPATH=str(ROOT / "sw")))
        assert done.returncode == 0, done.stderr[-2000:]
        _COMPILED[name] = out
    return _COMPILED[name]


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


def _engine_nodes(out: Path):
    from qonnx.core.modelwrapper import ModelWrapper

    import bitcycle.compile.customop  # noqa: F401  (registers the op)

    model = ModelWrapper(str(out / "model.onnx"))
    return model, [n for n in model.graph.node if n.op_type == "BitSerialMVAU_rtl"]


def _cases(slow: bool):
    out = []
    for name in MODELS:
        n_layers = {"tfc": 4, "sfc": 4, "lfc": 4, "cnv": 9, "cnv-fmnist": 8}[name]
        for i in range(n_layers):
            layer = f"BitSerialMVAU_rtl_{i}"
            fast = not name.startswith("cnv") or layer in FAST_CNV_LAYERS.get(name, [])
            if fast != slow:
                out.append(pytest.param(name, layer, id=f"{name}-{layer}"))
    return out


def _check(name, layer, tmp_root, tmp_path):
    from bitcycle.compile.layersim import check_layer

    model, nodes = _engine_nodes(compiled(name, tmp_root))
    node = next((n for n in nodes if n.name == layer), None)
    assert node is not None, f"{name} has no {layer}: {[n.name for n in nodes]}"
    seed = int(os.environ.get("BITCYCLE_SEED", "0"))
    r = check_layer(model, node, tmp_path, vectors=6, seed=seed)
    print({k: v for k, v in r.items() if k not in ("got", "want")})
    assert r["mismatches"] == 0, f"{name} {layer}: vector {r['first_bad']}: RTL {r['got'][r['first_bad']][:16]} " \
                                 f"node {r['want'][r['first_bad']][:16]}"
    # one bit-plane chunk per cycle, no bubbles between vectors
    assert r["cycles_per_vector"] == r["expected_cycles_per_vector"], r


@pytest.mark.rtl
@pytest.mark.parametrize("name,layer", _cases(slow=False))
def test_generated_layer_bit_exact_and_on_time(name, layer, tmp_root, tmp_path):
    _check(name, layer, tmp_root, tmp_path)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("name,layer", _cases(slow=True))
def test_generated_layer_bit_exact_and_on_time_slow(name, layer, tmp_root, tmp_path):
    _check(name, layer, tmp_root, tmp_path)


@pytest.mark.rtl
def test_the_simulation_reads_the_generated_weight_image(tmp_root, tmp_path):
    """Flip one weight in the .mem the wrapper names: the RTL must now differ from the node."""
    from qonnx.custom_op.registry import getCustomOp

    from bitcycle.compile.layersim import check_layer

    model, nodes = _engine_nodes(compiled("tfc", tmp_root))
    node = nodes[-1]  # raw sums: every weight shows in the output
    mem = getCustomOp(node).mem_files()[0]
    lines = mem.read_text().split()
    saved = mem.read_text()
    try:
        lines[0] = f"{int(lines[0], 16) ^ 1:0{len(lines[0])}x}"
        mem.write_text("\n".join(lines) + "\n")
        r = check_layer(model, node, tmp_path, vectors=4)
    finally:
        mem.write_text(saved)
    assert r["mismatches"] == 4  # row 0 of every vector moves by ±2


def test_generated_files_follow_finn_conventions(tmp_root):
    """What CreateStitchedIP / RTLBackend need: ip_path, gen_top_module naming a Verilog top that
    exists, add_files one file per command (3 tokens, files present), one copy of the shared RTL,
    mem_mode internal_embedded, no dead images."""
    from qonnx.custom_op.registry import getCustomOp

    out = compiled("sfc", tmp_root)
    model, nodes = _engine_nodes(out)
    shared = set()
    for node in nodes:
        inst = getCustomOp(node)
        top = inst.get_nodeattr("gen_top_module")
        assert top and inst.get_nodeattr("ip_path") and Path(inst.get_nodeattr("ip_path")).is_dir()
        assert inst.get_nodeattr("mem_mode") == "internal_embedded"
        wrapper = Path(inst.get_nodeattr("ip_path")) / f"{top}.v"
        assert wrapper.is_file() and f"module {top} (" in wrapper.read_text()
        cmds = inst.code_generation_ipi()
        adds = [c for c in cmds if c.startswith("add_files -norecurse")]
        assert adds and all(len(c.split()) == 3 and Path(c.split()[2]).is_file() for c in adds)
        assert cmds[-1] == f"create_bd_cell -type module -reference {top} {node.name}"
        shared |= {c.split()[2] for c in adds if c.endswith(".sv")}
        # FINN renames nodes (MakeZYNQProject): the cell still references the generated top
        node.name = node.name + "_renamed"
        assert f"-reference {top} " in inst.code_generation_ipi()[-1]
    assert len(shared) == 8  # bitcycle_mvau's eight files, once for the whole project
    names = sorted(p.name for p in (out / "codegen").rglob("*.sv"))
    assert names == sorted(["bitcycle_axis_fifo.sv", "bitcycle_mvau.sv", "bitcycle_mvau_inbuf.sv",
                            "bitcycle_sumtree.sv", "bitcycle_popcount.sv", "bitcycle_dotcount.sv", "bitcycle_rom.sv",
                            "bitcycle_param_check.sv"]), names
    assert not list((out / "codegen").rglob("*_wwords.mem")) and not list((out / "weights").glob("*.mem"))


def test_minimize_bit_width_keeps_bipolar_semantics():
    """FINN's MinimizeAccumulatorWidth on a BINARY-input layer whose weights are all +1: MVAU's
    {0,1} reading would give UINT; the layer computes ±MW and must stay INT<acc_bits>."""
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.util.basic import qonnx_make_model

    import bitcycle.compile.customop  # noqa: F401

    mw, mh = 64, 8
    node = helper.make_node("BitSerialMVAU_rtl", ["x", "w"], ["y"], name="L", domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", MW=mw, MH=mh, PE=2, SIMD=8, inputDataType="BINARY",
                            outputDataType="INT8", weightDataType="BIPOLAR", bits=1, acc_bits=8, noActivation=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, mw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, mh])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("w", np.ones((mw, mh), np.float32))
    model.set_tensor_datatype("w", DataType["BIPOLAR"])
    model.set_tensor_datatype("x", DataType["BINARY"])
    model = model.transform(MinimizeWeightBitWidth()).transform(MinimizeAccumulatorWidth())
    inst = getCustomOp(model.graph.node[0])
    assert inst.get_nodeattr("weightDataType") == "BIPOLAR"
    assert inst.get_nodeattr("accDataType") == "INT8" and inst.get_nodeattr("acc_bits") == 8
    odt = DataType[inst.get_nodeattr("outputDataType")]
    assert odt.signed() and odt.min() <= -mw and odt.max() >= mw  # all −1 inputs give −64, all +1 give +64


def test_bad_folding_is_one_line_at_compile_time(tmp_root):
    from qonnx.custom_op.registry import getCustomOp

    from bitcycle.compile.customop import check_buildable
    from bitcycle.errors import BitCycleError

    _, nodes = _engine_nodes(compiled("tfc", tmp_root))
    inst = getCustomOp(nodes[0])
    inst.set_nodeattr("SIMD", 5)  # MW = 784 = 2^4 · 7^2
    with pytest.raises(BitCycleError) as err:
        check_buildable(inst)
    msg = str(err.value)
    assert "\n" not in msg and nodes[0].name in msg and "SIMD=5" in msg and "7, 8, 14, 16" in msg
    inst.set_nodeattr("SIMD", 16)
    for attr, value, legal in (("wrom_lut_pe", inst.get_nodeattr("PE") + 1, "legal: 0.."),
                               ("ram_style", "ultra", "legal: auto, block, distributed")):
        old = inst.get_nodeattr(attr)
        inst.set_nodeattr(attr, value)
        with pytest.raises(BitCycleError, match=legal) as err:
            check_buildable(inst)
        assert "\n" not in str(err.value) and nodes[0].name in str(err.value)
        inst.set_nodeattr(attr, old)


def _stitch(model, build_dir: Path):
    """FINN's own CreateStitchedIP on the dataflow partition, up to the point where it runs Vivado."""
    from finn.transformation.fpgadataflow.create_stitched_ip import CreateStitchedIP

    from bitcycle.bench.dataflow import _dataflow_only

    from finn.util.settings import initialize_dummy_settings

    os.environ["FINN_BUILD_DIR"] = str(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    initialize_dummy_settings()  # reads FINN_BUILD_DIR
    return _dataflow_only(model).transform(CreateStitchedIP("xc7z020clg400-1", 10.0))


def test_finn_create_stitched_ip_accepts_the_project(tmp_root, tmp_path):
    """finn-plus 1.6.1's CreateStitchedIP checks ip_path, the 3-token add_files and the files, then
    writes its Tcl and calls Vivado (absent here): it must get that far. Its Tcl must reference only
    modules defined in the files it adds, each module in one file (one shared copy per project)."""
    import re

    from finn.util.settings import initialize_dummy_settings

    initialize_dummy_settings()
    model, _ = _engine_nodes(compiled("sfc", tmp_root))
    with pytest.raises(FileNotFoundError, match="vivado not found"):
        _stitch(model, tmp_path)
    tcl = next(tmp_path.glob("vivado_stitch_proj_*/make_project.tcl")).read_text()
    files = [l.split()[2] for l in tcl.splitlines() if l.startswith("add_files -norecurse")]
    # the layers' files (FINN adds its sim_ctrl via $::env and Vivado's own design wrapper too)
    files = [f for f in files if not f.startswith("$") and "vivado_stitch_proj" not in f]
    assert files and all(Path(f).is_file() for f in files)
    defined: dict[str, set] = {}
    for f in set(files):
        if f.endswith((".v", ".sv")):
            for m in re.findall(r"^\s*module\s+(\w+)", Path(f).read_text(), re.M):
                defined.setdefault(m, set()).add(Path(f).resolve())
    assert all(len(v) == 1 for v in defined.values()), {k: v for k, v in defined.items() if len(v) > 1}
    refs = [r for r in re.findall(r"create_bd_cell -type module -reference (\w+) ", tcl) if r != "sim_ctrl"]
    assert refs and all(r in defined for r in refs), [r for r in refs if r not in defined]


def test_finn_create_stitched_ip_rejects_the_old_mistakes(tmp_root, tmp_path, monkeypatch):
    """The mistakes the earlier layer made stop FINN's own CreateStitchedIP: an empty ip_path, and
    all files on one add_files line."""
    from finn.util.exception import FINNInternalError
    from finn.util.settings import initialize_dummy_settings
    from qonnx.custom_op.registry import getCustomOp

    from bitcycle.compile.customop import BitSerialMVAU_rtl

    initialize_dummy_settings()
    model, nodes = _engine_nodes(compiled("sfc", tmp_root))
    getCustomOp(nodes[1]).set_nodeattr("ip_path", "")
    with pytest.raises(FINNInternalError, match="ip_path is not set"):
        _stitch(model, tmp_path / "a")
    model, _ = _engine_nodes(compiled("sfc", tmp_root))
    one_line = lambda self: ["add_files -norecurse " + " ".join(str(f) for f in self.get_rtl_file_list(abspath=True))]  # noqa: E731
    monkeypatch.setattr(BitSerialMVAU_rtl, "code_generation_ipi", one_line)
    with pytest.raises(FINNInternalError, match="Unexpected command format"):
        _stitch(model, tmp_path / "b")


def _one_layer(mw, mh, pe, simd, w, thr, acc_bits, gen_dir: Path, **attrs):
    """A one-node graph: a BINARY-input BitSerialMVAU_rtl with the given ±1 weights [MW, MH] and
    thresholds [MH, 1] (and node attributes ``attrs``), its RTL generated into gen_dir."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.util.basic import qonnx_make_model

    import bitcycle.compile.customop  # noqa: F401  (registers the op)

    node = helper.make_node("BitSerialMVAU_rtl", ["x", "w", "t"], ["y"], name="L", domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", MW=mw, MH=mh, PE=pe, SIMD=simd, inputDataType="BINARY",
                            outputDataType="BINARY", weightDataType="BIPOLAR", bits=1, acc_bits=acc_bits,
                            noActivation=0, bits_max=1, code_gen_dir_ipgen=str(gen_dir), **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, mw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, mh])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("w", w.astype(np.float32))
    model.set_tensor_datatype("w", DataType["BIPOLAR"])
    model.set_initializer("t", thr.astype(np.float32))
    inst = getCustomOp(model.graph.node[0])
    inst.generate_hdl(model, "xc7z020clg400-1", 10.0)
    return model, inst


@pytest.mark.rtl
@pytest.mark.parametrize("acc_bits", [8, 9])
def test_threshold_as_start_value_ties_and_extremes(tmp_path, acc_bits):
    """A 1-bit layer with one threshold per channel starts its accumulator at −(T + MW) (THR_INIT)
    and outputs the sign: thresholds equal to the sums of the all −1 and all +1 vectors (ties,
    which count as s ≥ T) and one above, the clamped extremes ±2^(A−1) and ±MW, ±MW ± 1; bit-exact
    vs the node."""
    from bitcycle.compile.layersim import check_layer
    from bitcycle.compile.mvau_images import thr_init_applies

    mw, mh, pe, simd = 120, 24, 4, 40  # |s| <= 120 fits ACC_BITS 8 exactly
    assert thr_init_applies(1, 1, mw, acc_bits)
    rng = np.random.default_rng(acc_bits)
    w = rng.choice(np.array([-1.0, 1.0]), size=(mw, mh))
    col = w.sum(axis=0)  # s of the all +1 vector (check_layer's vector 1); −col for all −1 (vector 0)
    big = 1 << (acc_bits - 1)
    extremes = [big, -big, mw, -mw, mw + 1, -mw - 1, mw - 1, 1 - mw, 0, 3 * big]
    # per row: a tie at vector 1, a tie at vector 0, one above vector 1's sum, an extreme
    thr = np.array([[col[r], -col[r], col[r] + 1, extremes[(r // 4) % len(extremes)]][r % 4]
                    for r in range(mh)], dtype=np.float64).reshape(mh, 1)
    model, inst = _one_layer(mw, mh, pe, simd, w, thr, acc_bits, tmp_path / "gen")
    wrapper = Path(inst.get_nodeattr("ip_path")) / f"{inst.get_nodeattr('gen_top_module')}.v"
    assert ".THR_INIT(1)" in wrapper.read_text().replace(" ", "")
    r = check_layer(model, inst.onnx_node, tmp_path / "sim", vectors=8, seed=acc_bits)
    assert r["mismatches"] == 0, (r["first_bad"], r["got"][r["first_bad"]], r["want"][r["first_bad"]])
    assert r["want"][:2].min() == 0 and r["want"][:2].max() == 1  # the ties and extremes go both ways


@pytest.mark.rtl
@pytest.mark.parametrize("attrs,lut_lanes,ramb18", [
    ({"wrom_lut_pe": 1}, 1, 3),             # 3 lanes: 96 bits × 128 words in three 512×36 RAMB18s
    ({"wrom_lut_pe": 3}, 3, 0),             # 1 lane: 4 kbit, below 8 kbit, LUT logic too
    ({"ram_style": "distributed"}, 4, 0)])  # FINN's MVAU attribute: every lane
def test_weight_lanes_in_lut_logic(tmp_path, attrs, lut_lanes, ramb18):
    """The folding's block-RAM trade: the top lanes' weights in LUT logic from their own image
    (WROM_LUT_PE), the rest in block RAM. Bit-exact vs the node, on time, and a flipped bit in
    the LUT lanes' image shows in the RTL's output (the simulation reads that image)."""
    from bitcycle.compile.layersim import check_layer

    mw, mh, pe, simd = 256, 64, 4, 32  # 64 kbit: block RAM unless in LUT logic
    rng = np.random.default_rng(lut_lanes)
    w = rng.choice(np.array([-1.0, 1.0]), size=(mw, mh))
    thr = rng.integers(-20, 21, size=(mh, 1)).astype(np.float64)
    model, inst = _one_layer(mw, mh, pe, simd, w, thr, 10, tmp_path / "gen", **attrs)
    wrapper = (Path(inst.get_nodeattr("ip_path")) / f"{inst.get_nodeattr('gen_top_module')}.v").read_text()
    assert f".WROM_LUT_PE({lut_lanes})" in wrapper.replace(" ", "")
    mems = {m.name.split("_wrapper_")[-1]: m for m in inst.mem_files()}
    assert ("weights.mem" in mems) == (lut_lanes < pe) and "weights_lut.mem" in mems
    lut_image = mems["weights_lut.mem"].read_text().split()
    assert len(lut_image) == (mw // simd) * (mh // pe) and {len(x) for x in lut_image} == {lut_lanes * simd // 4}
    assert inst.bram_estimation() == ramb18
    r = check_layer(model, inst.onnx_node, tmp_path / "sim", vectors=6, seed=lut_lanes)
    assert r["mismatches"] == 0, (r["first_bad"], r["got"][r["first_bad"]], r["want"][r["first_bad"]])
    assert r["cycles_per_vector"] == r["expected_cycles_per_vector"], r
    ones = (1 << (lut_lanes * simd)) - 1  # negate the LUT lanes' weights: their sums change sign
    mems["weights_lut.mem"].write_text("".join(f"{int(x, 16) ^ ones:0{len(x)}x}\n" for x in lut_image))
    r = check_layer(model, inst.onnx_node, tmp_path / "sim2", vectors=6, seed=lut_lanes)
    assert r["mismatches"] > 0
