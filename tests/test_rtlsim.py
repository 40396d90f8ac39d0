"""`bitcycle rtlsim`: a compiled MLP's whole dataflow (BitCycle layers, FINN's width converters,
FIFOs) as one Verilator model, real Fashion-MNIST images under random input gaps and output
backpressure, exact against execute_onnx and the torch export, cycles/image against the estimate;
a corrupted generated file is caught; a broken build names its log. A tiny CNN (16×16×1 input,
convs 4-4-P-8-8-P, FC 16-10: FINN's sliding windows and width converters, BitCycle's max-pools)
runs the same way on 3 random images, and a max-pool that ANDs instead of ORs is caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import run_cli

FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def tfc(tmp_path_factory):
    if not FMNIST.is_file():
        pytest.fail(f"{FMNIST} missing: apt-get install dataset-fashion-mnist")
    out = tmp_path_factory.mktemp("rtlsim") / "tfc"
    done = run_cli("compile", "--model", "tfc", "--dataset", "fashion-mnist", "--check-images", "4", "--part", "pynq-z2",
                "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.mark.rtl
def test_mlp_dataflow_runs_exact_and_on_time(tfc):
    done = run_cli("rtlsim", "--build", str(tfc), "--images", "20", "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    r = json.loads((tfc / "rtlsim.json").read_text())
    assert r["images"] == 20 and r["dataset"] == "fashion-mnist"
    assert r["mismatches"] == {"vs_execute_onnx": 0, "vs_torch_integer_logits": 0, "top1_vs_execute_onnx": 0,
                               "top1_vs_torch": 0}
    assert abs(r["cycles_per_image"] / r["expected_cycles_per_image"] - 1) <= 0.10, r
    assert r["images_per_s"] == pytest.approx(r["clock_mhz"] * 1e6 / r["cycles_per_image"])
    ops = [l["op_type"] for l in r["layers"]]
    assert ops.count("BitSerialMVAU_rtl") == 4 and all(l["expected_cycles_per_image"] >= 0 for l in r["layers"])
    # built from the files each node hands the vendor flow
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    import bitcycle.compile.customop  # noqa: F401
    from finn.util.settings import initialize_dummy_settings

    initialize_dummy_settings()
    model = ModelWrapper(str(tfc / "model.onnx"))
    names = {Path(f).name for n in model.graph.node if n.domain.endswith("rtl")
             for f in getCustomOp(n).get_rtl_file_list(abspath=True)}
    assert names <= {Path(f).name for f in r["files"]}


TINY_CNN = '{"input_size": 16, "in_channels": 1, "channels": [4, 4, 8, 8], "fc": [16]}'


@pytest.fixture(scope="module")
def tiny_cnn(tmp_path_factory):
    out = tmp_path_factory.mktemp("rtlsim") / "cnv"
    done = run_cli("compile", "--model", "cnv", "--model-cfg", TINY_CNN, "--dataset", "random", "--check-images", "2",
                "--part", "pynq-z2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.mark.rtl
def test_cnn_dataflow_runs_exact_and_on_time(tiny_cnn):
    """Whole CNN in one Verilator model: FINN's ConvolutionInputGenerator_rtl and
    StreamingDataWidthConverter_rtl, BitSerialMVAU_rtl, BitCycleMaxPool_rtl; 3 random images."""
    done = run_cli("rtlsim", "--build", str(tiny_cnn), "--images", "3", "--seed", "5")
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    r = json.loads((tiny_cnn / "rtlsim.json").read_text())
    assert r["images"] == 3 and r["dataset"] == "random"
    assert r["mismatches"] == {"vs_execute_onnx": 0, "vs_torch_integer_logits": 0, "top1_vs_execute_onnx": 0,
                               "top1_vs_torch": 0}
    assert abs(r["cycles_per_image"] / r["expected_cycles_per_image"] - 1) <= 0.10, r
    ops = [l["op_type"] for l in r["layers"]]
    assert ops.count("BitSerialMVAU_rtl") == 6 and ops.count("BitCycleMaxPool_rtl") == 2
    assert ops.count("ConvolutionInputGenerator_rtl") == 6 and "StreamingDataWidthConverter_rtl" in ops
    assert {"swg_common.sv", "bitcycle_maxpool.sv"} <= {Path(f).name for f in r["files"]}


@pytest.mark.rtl
def test_a_maxpool_that_ands_is_a_mismatch(tiny_cnn):
    sv = tiny_cnn / "codegen" / "bitcycle_rtl" / "bitcycle_maxpool.sv"
    saved = sv.read_text()
    assert saved.count("acc_q | in0_V_TDATA") == 2
    try:
        sv.write_text(saved.replace("acc_q | in0_V_TDATA", "acc_q & in0_V_TDATA"))
        done = run_cli("rtlsim", "--build", str(tiny_cnn), "--images", "2")
    finally:
        sv.write_text(saved)
    assert done.returncode == 2 and "mismatching images" in done.stderr
    r = json.loads((tiny_cnn / "rtlsim.json").read_text())
    assert r["mismatches"]["vs_execute_onnx"] == 2 and r["mismatches"]["vs_torch_integer_logits"] == 2


@pytest.mark.rtl
def test_a_corrupted_weight_image_is_a_mismatch(tfc, tmp_path):
    mem = sorted((tfc / "codegen").rglob("BitSerialMVAU_rtl_3_wrapper_weights.mem"))[0]
    saved = mem.read_text()
    try:
        first, rest = saved.split("\n", 1)
        mem.write_text(f"{int(first, 16) ^ 1:0{len(first)}x}\n{rest}")
        done = run_cli("rtlsim", "--build", str(tfc), "--images", "4")
    finally:
        mem.write_text(saved)
    assert done.returncode == 2 and "mismatching images" in done.stderr
    r = json.loads((tfc / "rtlsim.json").read_text())
    assert r["mismatches"]["vs_execute_onnx"] == 4  # output 0 of every image moves by ±2


@pytest.mark.rtl
def test_a_build_failure_names_the_log(tfc):
    wrapper = sorted((tfc / "codegen").rglob("BitSerialMVAU_rtl_1_wrapper.v"))[0]
    saved = wrapper.read_text()
    try:
        wrapper.write_text(saved.replace("endmodule", "endmodule_typo"))
        done = run_cli("rtlsim", "--build", str(tfc), "--images", "2")
    finally:
        wrapper.write_text(saved)
    line = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "build.log" in line and "Verilator build of bitcycle_dataflow failed" in line
