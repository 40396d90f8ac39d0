"""A compiled CNN's driver.json: conv and max-pool layers with the geometry the driver lowers by
im2col, and params.npz; loaded into the driver (emu) it gives the compiled model's integer logits
exactly — BatchNorm with γ < 0, γ = 0 and spread statistics included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_run import run_cli

pytestmark = pytest.mark.xdist_group("compile_cnn_driver")
torch.set_num_threads(1)

TINY = {"input_size": 16, "in_channels": 1, "channels": [4, 4, 8, 8], "fc": [16]}  # test_rtlsim's CNN


def _spread_checkpoint(path, seed=0):
    from bitcycle.nets import get_model

    torch.manual_seed(seed)
    model = get_model("cnv", **TINY)
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 3)
            m.running_var.copy_(torch.rand(n, generator=gen) * 4 + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.weight.data[0] = 0.0  # γ = 0: the constant sign(β)
            m.weight.data[1] = -abs(float(m.weight.data[1])) - 0.1  # γ < 0
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.5)
    torch.save({"model": "cnv", "model_cfg": TINY, "state_dict": model.state_dict()}, path)
    return model.eval()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    d = tmp_path_factory.mktemp("cnn_driver")
    model = _spread_checkpoint(d / "model.pt")
    done = run_cli("compile", "--checkpoint", d / "model.pt", "--dataset", "random", "--check-images", "8",
                   "--out", d / "build", "--quiet", cwd=d)
    assert done.returncode == 0, done.stderr[-3000:]
    return model, d / "build"


def test_driver_json_has_the_cnn_geometry(compiled):
    from bitcycle.hwif import driver_json as DJ

    _, out = compiled
    spec = DJ.load(out / "driver.json")
    assert [l.name for l in spec.layers] == ["conv0", "conv1", "conv2", "conv3", "fc0", "fc1"]
    assert [l.conv for l in spec.layers[:4]] == [
        {"in_channels": 1, "in_h": 16, "in_w": 16, "kernel": 3, "stride": 1, "padding": 0},
        {"in_channels": 4, "in_h": 14, "in_w": 14, "kernel": 3, "stride": 1, "padding": 0},
        {"in_channels": 4, "in_h": 6, "in_w": 6, "kernel": 3, "stride": 1, "padding": 0},
        {"in_channels": 8, "in_h": 4, "in_w": 4, "kernel": 3, "stride": 1, "padding": 0}]
    assert [l.pool for l in spec.layers] == [None, {"kernel": 2, "stride": 2}, None, {"kernel": 2, "stride": 2},
                                             None, None]
    assert [(l.in_features, l.out_features, l.in_bits) for l in spec.layers] == [
        (9, 4, 8), (36, 4, 1), (36, 8, 1), (72, 8, 1), (8, 16, 1), (16, 10, 1)]
    assert (spec.layers[-1].norm, spec.layers[-1].act) == ("none", "none")
    assert spec.input.features == 256 and spec.params == "params.npz"
    assert spec.engine.rtl_parameters is not None  # the overlay bd.tcl builds


def test_driver_reproduces_the_compiled_integer_logits(compiled):
    from bitcycle.compile.export import prepare
    from bitcycle.driver import Accelerator

    model, out = compiled
    codes = np.random.default_rng(7).integers(0, 256, (48, 1, 16, 16)).astype(np.float32)
    want = prepare(model, (1, 1, 16, 16), pixel_max=255.0).integer_outputs(codes)
    with Accelerator("emu", driver_json=out / "driver.json") as acc:
        got = acc.forward(codes.reshape(len(codes), -1))
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want.argmax(1))) > 1  # not a constant model


def test_onnx_cnn_says_why_it_has_no_driver_json(compiled, tmp_path):
    import json

    _, out = compiled
    done = run_cli("compile", "--onnx", out / "qonnx.onnx", "--dataset", "random", "--check-images", "2",
                   "--out", tmp_path / "b", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    flow = json.loads((tmp_path / "b" / "dataflow.json").read_text())
    assert flow["driver_json"] is None and "read off the zoo's torch model" in flow["driver_json_note"]
