"""The model zoo: shapes, registry errors, and QONNX export → FINN streamlining equal to torch."""

import numpy as np
import pytest
import torch

from bitcycle.errors import BitCycleError
from bitcycle.nets import MODELS, binary_layers, get_model, load_model_config
from bitcycle.quant.grad import set_grad_bits

torch.set_num_threads(1)

CASES = [
    ("tfc", {}, (2, 1, 28, 28), 4),
    ("sfc", {"width": 16, "in_features": 64}, (2, 1, 8, 8), 4),
    ("lfc", {"width": 8}, (2, 1, 28, 28), 4),
    ("cnv", {"input_size": 28, "in_channels": 1, "width_mult": 0.125}, (2, 1, 28, 28), 8),
    ("cnv", {"width_mult": 0.125}, (2, 3, 32, 32), 9),
    ("resnet", {"stages": (4, 8), "blocks_per_stage": 1, "input_size": 16}, (2, 3, 16, 16), 5),
]


@pytest.mark.parametrize("name,cfg,shape,n_binary", CASES)
def test_forward_backward(name, cfg, shape, n_binary):
    torch.manual_seed(0)
    model = get_model(name, **cfg).train()
    assert set_grad_bits(model, 4) == n_binary == len(binary_layers(model))
    out = model(torch.rand(shape))
    assert out.shape == (shape[0], 10)
    out.sum().backward()
    assert all(layer.weight.grad is not None for layer in binary_layers(model))


def test_default_shapes():
    widths = {n: [l.out_features for l in binary_layers(get_model(n))] for n in ("tfc", "sfc", "lfc")}
    assert widths == {"tfc": [64, 64, 64, 10], "sfc": [256, 256, 256, 10], "lfc": [1024, 1024, 1024, 10]}
    cnv = [l.out_channels for l in binary_layers(get_model("cnv"))[:6]]
    assert cnv == [64, 64, 128, 128, 256, 256]
    assert binary_layers(get_model("cnv"))[6].in_features == 256
    assert binary_layers(get_model("cnv", input_size=28, in_channels=1))[5].in_features == 256 * 2 * 2


def test_registry_errors():
    with pytest.raises(BitCycleError, match="unknown model"):
        get_model("vgg")
    with pytest.raises(BitCycleError, match="no option"):
        get_model("sfc", depthh=2)
    with pytest.raises(BitCycleError, match="input_size"):
        get_model("cnv", input_size=20)
    assert set(MODELS) == {"tfc", "sfc", "lfc", "cnv", "resnet"}


def test_model_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "models"
    files = sorted(root.glob("*.toml"))
    assert files
    for f in files:
        name, cfg = load_model_config(f)
        get_model(name, **cfg)


@pytest.mark.parametrize("name,cfg,shape", [
    ("sfc", {"width": 16, "in_features": 64}, (1, 1, 8, 8)),
    ("cnv", {"input_size": 28, "in_channels": 1, "width_mult": 0.125}, (1, 1, 28, 28)),
])
def test_qonnx_export_and_finn_streamline(tmp_path, name, cfg, shape):
    from brevitas.export import export_qonnx
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from finn.transformation.streamline import Streamline
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    torch.manual_seed(0)
    model = get_model(name, **cfg).train()
    set_grad_bits(model, 4)
    with torch.no_grad():
        for _ in range(3):  # non-trivial BatchNorm statistics
            model(torch.rand((32,) + shape[1:]))
    model.eval()
    path = tmp_path / f"{name}.onnx"
    export_qonnx(model, torch.rand(shape), str(path))
    wrapped = cleanup_model(ModelWrapper(str(path))).transform(ConvertQONNXtoFINN()).transform(Streamline())
    ops = [n.op_type for n in wrapped.graph.node]
    assert "MultiThreshold" in ops and not {"BatchNormalization", "Quant", "BipolarQuant"} & set(ops)
    x = (np.random.RandomState(1).randint(0, 256, size=(4,) + shape[1:]) / 255.0).astype(np.float32)
    for i in range(4):
        ref = model(torch.from_numpy(x[i:i + 1])).detach().numpy()
        got = execute_onnx(wrapped, {wrapped.graph.input[0].name: x[i:i + 1]})[wrapped.graph.output[0].name]
        np.testing.assert_allclose(got, ref, atol=1e-4)
