"""exec_mode rtlsim: BitSerialMVAU executed through its generated RTL in Verilator, and compile's
`--rtlsim-check N` (the engine stage checked again that way). A tiny tfc compiles with 0 mismatches;
a wrong weight file makes the RTL — and only the RTL — compute the faulty weights, exactly, and a
faulty generated weight image fails the compile's engine stage with the count of images it breaks."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

pytestmark = pytest.mark.rtl

TINY = ("--model", "tfc", "--set", "in_features=64", "--set", "width=16", "--set", "depth=1")
CHECK, RTLSIM = 12, 4


def _compile(out, *extra):
    import torch

    from bitcycle.cli import main

    torch.manual_seed(0)  # the zoo model's untrained weights: the same in every compile of this process
    return main(["compile", *TINY, "--check-images", str(CHECK), "--rtlsim-check", str(RTLSIM), "--quiet",
                 "--out", str(out), *extra])


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("rtlsim_mode") / "tiny"
    assert _compile(out) == 0
    return out


def _engine_graph_and_pixels(build, n):
    from qonnx.core.modelwrapper import ModelWrapper

    import bitcycle.compile.customop  # noqa: F401  (registers BitSerialMVAU)
    from bitcycle.compile.commands import test_pixels

    flow = json.loads((build / "dataflow.json").read_text())
    model = ModelWrapper(str(build / "intermediate_models" / "step_map_to_engine.onnx"))
    return model, test_pixels("digits", flow["input_shape"], flow["pixel_max"], n)


def test_compile_rtlsim_check_passes_and_says_which_mode(tiny_build):
    engine = json.loads((tiny_build / "compile.json").read_text())["stages"]["engine"]
    assert (engine["exec_mode"], engine["checked"], engine["rtlsim_checked"], engine["mismatches"]) == (
        "python+rtlsim", CHECK, RTLSIM, 0)
    assert json.loads((tiny_build / "compile_config.json").read_text())["rtlsim_check"] == RTLSIM
    # stages without it were checked in Python only
    assert json.loads((tiny_build / "compile.json").read_text())["stages"]["hw"]["exec_mode"] == "python"


def test_wrong_weight_file_is_what_the_rtl_computes(tiny_build, tmp_path):
    """The simulation reads the generated weight file: overwrite layer 0's with the image of W with
    output row 3 negated, and the RTL's outputs equal the golden model's on that W exactly (and differ
    from the true model's), so execute_onnx in rtlsim mode really runs the RTL."""
    from qonnx.custom_op.registry import getCustomOp

    from bitcycle.compile import mvau_images
    from bitcycle.compile.flow import execute
    from bitcycle.compile.rtlsim_exec import prepare_rtlsim

    model, pixels = _engine_graph_and_pixels(tiny_build, 6)
    good = execute(model, pixels)
    sim = prepare_rtlsim(copy.deepcopy(model), tmp_path / "work")
    np.testing.assert_array_equal(execute(sim, pixels), good)

    node = sim.get_nodes_by_op_type("BitSerialMVAU")[0]
    inst = getCustomOp(node)
    w = sim.get_initializer(node.input[1]).copy()
    w[:, 3] *= -1
    mem = tmp_path / "work" / node.name / f"{node.name}_wrapper_weights.mem"
    assert mem.is_file()
    mem.write_text(mvau_images.weight_mem_text(w, inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")))
    faulty_golden = copy.deepcopy(model)
    faulty_golden.set_initializer(node.input[1], w)
    want = execute(faulty_golden, pixels)
    got = execute(sim, pixels)
    np.testing.assert_array_equal(got, want)
    assert np.any(np.any(got != good, axis=1))


def test_faulty_generated_weights_fail_the_engine_stage_with_the_count(tiny_build, tmp_path, monkeypatch, capsys):
    """A generator fault only the RTL sees (the output layer's weight image with class 0's row
    negated): Python's check passes, the rtlsim check fails on exactly the images whose class-0
    logit is not 0, and says so in one line."""
    from bitcycle.compile import mvau_images
    from bitcycle.compile.flow import execute

    real = mvau_images.weight_mem_text

    def faulty(w, pe, simd, lanes=None):
        w = np.array(w)
        if w.shape[1] == 10:  # the output layer
            w[:, 0] *= -1
        return real(w, pe, simd, lanes)

    monkeypatch.setattr(mvau_images, "weight_mem_text", faulty)
    model, pixels = _engine_graph_and_pixels(tiny_build, RTLSIM)
    expect_bad = int(np.sum(execute(model, pixels)[:, 0] != 0))
    assert expect_bad > 0
    out = tmp_path / "faulty"
    assert _compile(out) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert f"stage engine (exec_mode rtlsim): graph output differs from torch on {expect_bad}/{RTLSIM} images" in err
    assert re.search(r"generated RTL computes differently from the golden model", err)
    assert not out.exists()  # a failed compile leaves no build directory …
    assert (tmp_path / ".faulty.rtlsim-check" / "MVAU_1" / "MVAU_1_wrapper_weights.mem").is_file()  # … the RTL it blames stays


def test_verilator_build_failure_is_one_line_naming_the_log(tmp_path, monkeypatch):
    from bitcycle.compile import rtlsim_exec
    from bitcycle.errors import BitCycleError

    bad = tmp_path / "broken.v"
    bad.write_text("module broken(input wire ap_clk); this is not verilog\nendmodule\n")
    with pytest.raises(BitCycleError) as err:
        rtlsim_exec.build_cached("broken", [bad], tmp_path / "b")
    msg = str(err.value)
    assert "\n" not in msg and "Verilator build of broken failed; see" in msg
    assert (tmp_path / "b" / "build.log").is_file() and str(tmp_path / "b" / "build.log") in msg
    assert not (tmp_path / "b" / rtlsim_exec.STAMP).exists()  # a failed build is not cached


def test_folded_graph_node_by_node_in_rtlsim(tiny_build):
    """FINN's node-by-node rtlsim on the generated project: model.onnx's BitSerialMVAU_rtl layers at
    their folded PE/SIMD, each from its own codegen files, agree with the golden model."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from bitcycle.compile.flow import execute
    from bitcycle.compile.rtlsim_exec import prepare_rtlsim
    from finn.util.settings import initialize_dummy_settings

    initialize_dummy_settings()
    _, pixels = _engine_graph_and_pixels(tiny_build, 3)
    model = ModelWrapper(str(tiny_build / "model.onnx"))
    for n in model.graph.node:  # FINN's width converters: their Python model
        if n.op_type.startswith("StreamingDataWidthConverter"):
            getCustomOp(n).set_nodeattr("exec_mode", "cppsim")
    mvaus = model.get_nodes_by_op_type("BitSerialMVAU_rtl")
    assert len(mvaus) == 2 and any(getCustomOp(n).get_nodeattr("PE") > 1 for n in mvaus)
    good = execute(model, pixels)
    sim = prepare_rtlsim(copy.deepcopy(model))
    assert all(getCustomOp(n).get_nodeattr("exec_mode") == "rtlsim" for n in sim.get_nodes_by_op_type("BitSerialMVAU_rtl"))
    np.testing.assert_array_equal(execute(sim, pixels), good)


TINY_CNN = ("--model", "cnv", "--set", "input_size=16", "--set", "in_channels=1", "--set", "channels=[4,4,8,8]",
            "--set", "fc=[16]", "--dataset", "random")


@pytest.mark.slow
def test_cnn_engine_stage_in_rtlsim_including_maxpools(tmp_path, monkeypatch):
    """A tiny CNN's engine stage (six BitSerialMVAUs, two BitCycleMaxPools, FINN's sliding windows in
    Python) passes in rtlsim mode; a max-pool wrapper that ORs half-windows (K2/2: a fault the Python
    model cannot see) fails it."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.cli import main
    from bitcycle.compile import maxpool_op
    from bitcycle.compile.flow import check_stage_rtlsim, execute
    from bitcycle.errors import BitCycleError

    out = tmp_path / "cnn"
    assert main(["compile", *TINY_CNN, "--check-images", "2", "--rtlsim-check", "2", "--stop-step",
                 "step_map_to_engine", "--quiet", "--out", str(out)]) == 0
    engine = json.loads((out / "compile.json").read_text())["stages"]["engine"]
    assert (engine["exec_mode"], engine["rtlsim_checked"], engine["nodes"].count("BitCycleMaxPool")) == (
        "python+rtlsim", 2, 2)
    assert (tmp_path / ".cnn.rtlsim-check" / "Pool_0" / "rtlsim_build" / "Vtop").is_file()

    model = ModelWrapper(str(out / "intermediate_models" / "step_map_to_engine.onnx"))
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, *model.get_tensor_shape(model.graph.input[0].name)[1:]))
    want = execute(model, pixels)
    real = maxpool_op.wrapper_v
    monkeypatch.setattr(maxpool_op, "wrapper_v", lambda top, pe, k2: real(top, pe, k2 // 2))
    with pytest.raises(BitCycleError, match=r"stage engine \(exec_mode rtlsim\): graph output differs from torch "
                                            r"on [12]/2 images"):
        check_stage_rtlsim("engine", model, pixels, want, tmp_path / "faulty")
