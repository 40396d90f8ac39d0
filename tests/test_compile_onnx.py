"""`bitcycle compile --onnx`: Brevitas' own bnn_pynq TFC and SFC exported to QONNX in the test, compiled,
and the compiled graphs checked exactly against torch; the zoo's own export; a trailing TopK; the input
map read from the graph or given and checked; bad files and non-W1A1 layers get one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_run import one_line_exit_2, run_cli

pytestmark = pytest.mark.xdist_group("compile_onnx")
torch.set_num_threads(1)


def _bnn_pynq(name: str, seed: int = 0, zero_gamma_beta: float = 0.3):
    """An untrained bnn_pynq model with spread BatchNorm statistics (γ < 0 and γ = 0 included: channel 1 of
    every BN has γ = 0 and β = ``zero_gamma_beta``) and TensorNorm."""
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    model, _ = model_with_cfg(name, pretrained=False)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                n = mod.num_features
                mod.running_mean.copy_((torch.rand(n, generator=gen) - 0.5) * 8)
                mod.running_var.copy_(torch.rand(n, generator=gen) * 15 + 1)
                gamma = torch.rand(n, generator=gen) * 2 - 1
                gamma[:3] = torch.tensor([-0.7, 0.0, 0.4])
                mod.weight.copy_(gamma)
                beta = torch.rand(n, generator=gen) * 2 - 1
                beta[1] = zero_gamma_beta
                mod.bias.copy_(beta)
            if type(mod).__name__ == "TensorNorm":
                mod.running_mean.fill_(0.5)
                mod.running_var.fill_(4.0)
                mod.weight.data.fill_(0.75)
                mod.bias.data.fill_(-0.25)
    return model.eval()


def _export(model, path: Path, shape=(1, 1, 28, 28)) -> Path:
    from brevitas.export import export_qonnx

    export_qonnx(model, input_t=torch.zeros(shape), export_path=str(path))
    return path


def _torch_integer_out(model, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(output of the last QuantLinear, full logits) for pixel codes 0..255 (x = p / 255, FINN's convention)."""
    last = [m for m in model.modules() if type(m).__name__ == "QuantLinear"][-1]
    seen = []
    handle = last.register_forward_hook(lambda m, i, o: seen.append(o.detach().double().numpy()))
    with torch.no_grad():
        logits = model(torch.from_numpy(pixels.astype(np.float32) / 255.0)).double().numpy()
    handle.remove()
    return seen[0], logits


@pytest.fixture(scope="module")
def fmnist_pixels():
    from bitcycle.data import load

    return np.round(load("fashion-mnist").test_x[:40] * 255.0).astype(np.float32)


def _train_briefly(model, steps: int = 30):
    """A few Adam steps on Fashion-MNIST as bnn_pynq's trainer does them (weights clipped to ±1), so the
    BatchNorm statistics and weights are those of a (briefly) trained model."""
    from bitcycle.data import load

    a = load("fashion-mnist")
    gen = np.random.default_rng(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        idx = gen.choice(len(a.train_y), 100, replace=False)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(a.train_x[idx])), torch.from_numpy(a.train_y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.clip_weights(-1.0, 1.0)
    return model.eval()


@pytest.mark.parametrize("name", ["tfc_1w1a", "sfc_1w1a", "tfc_1w1a-trained"])
def test_bnn_pynq_compiles_exact_vs_torch(name, tmp_path, fmnist_pixels):
    from qonnx.core.modelwrapper import ModelWrapper

    import bitcycle.compile.customop  # noqa: F401  (registers BitSerialMVAU, so the saved graphs execute)
    from bitcycle.compile.flow import execute

    trained = name.endswith("-trained")
    name = name.replace("-trained", "")
    model = _train_briefly(_bnn_pynq(name)) if trained else _bnn_pynq(name)
    onnx_file = _export(model, tmp_path / f"{name}.onnx")
    out = tmp_path / "build"
    done = run_cli("compile", "--onnx", str(onnx_file), "--check-images", "40", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bit-exact vs the QONNX graph (execute_onnx) on 40 fashion-mnist images" in done.stdout
    summary = json.loads((out / "compile.json").read_text())
    assert summary["stages"]["engine"]["checked"] == 40 and summary["bit_exact"]
    # the compiled graphs against torch itself, on the same pixel codes
    ints, logits = _torch_integer_out(model, fmnist_pixels)
    assert len(np.unique(ints)) > 5  # the outputs vary: BN thresholds and weights matter
    for graph in ("step_to_hw_layers.onnx", "step_map_to_engine.onnx"):
        got = execute(ModelWrapper(str(out / "intermediate_models" / graph)), fmnist_pixels)
        np.testing.assert_array_equal(got, ints, err_msg=graph)
    head = json.loads((out / "dataflow.json").read_text())["head"]
    if not trained:  # TensorNorm (x − 0.5) / sqrt(4 + eps) · 0.75 − 0.25
        assert head["scale"] == pytest.approx(0.75 / np.sqrt(4.0 + 1e-4), rel=1e-6)
    np.testing.assert_allclose(head["scale"] * ints + head["bias"], logits, rtol=1e-5, atol=1e-5)
    spec = json.loads((out / "driver.json").read_text())
    # binary input: sign(2p/255 − 1), as the graph's BipolarQuant after its 2x − 1
    assert spec["input"]["bits"] == 1 and spec["input"]["scale"] == pytest.approx(2 / 255) and spec["input"]["offset"] == -1


def test_zero_gamma_negative_beta_compiles(tmp_path):
    """A γ = 0, β < 0 channel (sign always −1) leaves an out-of-range threshold that must still pack."""
    f = _export(_bnn_pynq("tfc_1w1a", zero_gamma_beta=-0.3), tmp_path / "tfc.onnx")
    done = run_cli("compile", "--onnx", str(f), "--check-images", "10", "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]


def test_bnn_pynq_cnv_compiles_exact_vs_torch(tmp_path):
    """FINN's CNV (8-bit input, six binary convs, max-pools, three FC layers) on random 32×32 RGB codes."""
    from qonnx.core.modelwrapper import ModelWrapper

    import bitcycle.compile.customop  # noqa: F401
    from bitcycle.compile.flow import execute

    model = _bnn_pynq("cnv_1w1a")
    with torch.no_grad():  # CNV's BNs are 2-D; spread them as _bnn_pynq does the 1-D ones
        gen = torch.Generator().manual_seed(5)
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_((torch.rand(n, generator=gen) - 0.5) * 40)
                mod.running_var.copy_(torch.rand(n, generator=gen) * 200 + 1)
                mod.weight.copy_(torch.rand(n, generator=gen) * 2 - 1)
                mod.bias.copy_(torch.rand(n, generator=gen) * 2 - 1)
    f = _export(model, tmp_path / "cnv.onnx", shape=(1, 3, 32, 32))
    out = tmp_path / "b"
    done = run_cli("compile", "--onnx", str(f), "--check-images", "3", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on 3 random images" in done.stdout
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 3, 32, 32)).astype(np.float32)  # = compile's
    ints, _ = _torch_integer_out(model, pixels)
    assert len(np.unique(ints)) > 3
    np.testing.assert_array_equal(execute(ModelWrapper(str(out / "intermediate_models" / "step_map_to_engine.onnx")), pixels), ints)
    flow = json.loads((out / "dataflow.json").read_text())
    assert flow["driver_json"] is None and "read off the zoo's torch model" in flow["driver_json_note"]


def test_topk_and_given_input_map(tmp_path, fmnist_pixels):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.insert_topk import InsertTopK
    from qonnx.util.cleanup import cleanup_model

    import bitcycle.compile.customop  # noqa: F401
    from bitcycle.compile.flow import execute
    from bitcycle.compile.onnx_in import prepare_onnx

    model = _bnn_pynq("tfc_1w1a", seed=3)
    plain = _export(model, tmp_path / "tfc.onnx")
    topk = tmp_path / "tfc_topk.onnx"
    cleanup_model(ModelWrapper(str(plain))).transform(InsertTopK(k=1)).save(str(topk))
    prepared = prepare_onnx(topk, 255.0)
    assert prepared.meta["topk"] == 1 and prepared.input_scale == 1 / 255 and prepared.input_offset == 0.0
    ints, _ = _torch_integer_out(model, fmnist_pixels)
    np.testing.assert_array_equal(prepared.integer_outputs(fmnist_pixels), ints)
    out = tmp_path / "b"
    done = run_cli("compile", "--onnx", str(topk), "--input-scale", str(1 / 255), "--input-offset", "0",
                "--check-images", "20", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_array_equal(execute(ModelWrapper(str(out / "intermediate_models" / "step_map_to_engine.onnx")), fmnist_pixels), ints)


def test_zoo_export_through_onnx_takes_codes(tmp_path):
    from bitcycle.compile.onnx_in import prepare_onnx

    done = run_cli("export", "--model", "tfc", "--set", "in_features=64", "--set", "width=16", "--set", "depth=1",
                "--out", str(tmp_path / "zoo"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    prepared = prepare_onnx(tmp_path / "zoo" / "qonnx.onnx", 16.0)
    # the zoo's graph takes digits codes 0..16 itself: 8-bit quantiser at 2^-7 after ·1/16, ·2, −1
    assert (prepared.input_scale, prepared.input_offset) == (1.0, 0.0)
    assert prepared.meta["graph_input_range"] == [0.0, 16.0]
    assert prepared.driver_input(8) == ((16.0, -128.0), None)  # as driver_spec's zoo formula 2^8/16, −2^7
    out = tmp_path / "b"
    done = run_cli("compile", "--onnx", str(tmp_path / "zoo" / "qonnx.onnx"), "--check-images", "30", "--out", str(out),
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on 30 digits images" in done.stdout
    assert json.loads((out / "driver.json").read_text())["input"]["scale"] == 16.0


def test_bad_onnx_inputs_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 this is no protobuf \xff\xff")
    one_line_exit_2(run_cli("compile", "--onnx", str(corrupt), cwd=tmp_path), "is not an ONNX file")
    one_line_exit_2(run_cli("compile", "--onnx", str(tmp_path / "absent.onnx"), cwd=tmp_path), "no such file")
    # a float model (no Quant nodes): not a QONNX export
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.ones(12, np.float32))
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w])
    flt = tmp_path / "float.onnx"
    onnx.save(helper.make_model(g), str(flt))
    one_line_exit_2(run_cli("compile", "--onnx", str(flt), cwd=tmp_path), "no Quant/BipolarQuant nodes")
    # a batch of 4 in the export
    f = _export(_bnn_pynq("tfc_1w1a"), tmp_path / "b4.onnx", shape=(4, 1, 28, 28))
    one_line_exit_2(run_cli("compile", "--onnx", str(f), cwd=tmp_path), "input has shape [4, 1, 28, 28]", "batch-1")


@pytest.mark.parametrize("name, needle", [
    ("tfc_2w2a", "-bit weights"),
    ("tfc_1w2a", "2-bit activations"),
])
def test_non_w1a1_layers_named(name, needle, tmp_path):
    model = _bnn_pynq(name)
    f = _export(model, tmp_path / f"{name}.onnx")
    line = one_line_exit_2(run_cli("compile", "--onnx", str(f), cwd=tmp_path), needle)
    assert "Gemm_" in line and "node_linear" in line and "in the file" in line  # names the layer both ways


def test_unsupported_node_named(tmp_path):
    """A Relu between the BN and the sign of bnn_pynq's TFC: one line naming the node and what is supported."""
    from onnx import helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    f = _export(_bnn_pynq("tfc_1w1a"), tmp_path / "tfc.onnx")
    m = cleanup_model(ModelWrapper(str(f)))
    bn = m.get_nodes_by_op_type("BatchNormalization")[0]
    sign = m.find_consumer(bn.output[0])
    sign.input[0] = "relu_out"
    m.graph.node.insert(list(m.graph.node).index(sign), helper.make_node("Relu", [bn.output[0]], ["relu_out"], name="MyRelu"))
    m.save(str(tmp_path / "relu.onnx"))
    one_line_exit_2(run_cli("compile", "--onnx", str(tmp_path / "relu.onnx"), cwd=tmp_path),
                     "node MyRelu is a Relu, which BitCycle cannot compile", "supported: ", "BatchNormalization")


def test_input_flags_checked_against_the_graph(tmp_path):
    f = _export(_bnn_pynq("tfc_1w1a"), tmp_path / "tfc.onnx")
    line = one_line_exit_2(run_cli("compile", "--onnx", str(f), "--input-scale", "1", cwd=tmp_path),
                            "map pixel codes 0..255 onto [0, 255]", "spans inputs [0, 1]")
    assert "--input-scale 0.0039215686" in line
    one_line_exit_2(run_cli("compile", "--model", "tfc", "--input-scale", "1", cwd=tmp_path), "apply to --onnx graphs only")
