"""The quantizers (Brevitas' own binary / int / fixed-point quantizers with scale 1): checkpoints
written before they were rebuilt still load, the input quantiser's grid follows its bit width, and
the exported QONNX quantisation nodes carry exactly the scales the compile flow relies on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bitcycle.errors import BitCycleError
from bitcycle.nets import get_model
from bitcycle.nets.layers import BinaryLinear, binary_act, input_quant

torch.set_num_threads(1)

DATA = Path(__file__).resolve().parent / "data"
KEY_ROWS = json.loads((DATA / "zoo_state_dict_keys.json").read_text())

# the models whose weights, inputs and eval logits (written by the quantizers before the rebuild)
# are in checkpoint_before_brevitas_quantizers.npz
OLD_CHECKPOINTS = {
    "mlp": ("sfc", {"width": 16, "in_features": 64, "last_weight_bits": 8}),
    "cnv": ("cnv", {"input_size": 12, "in_channels": 1, "channels": [4, 4, 8], "fc": [16], "last_weight_bits": 8}),
}


@pytest.mark.parametrize("row", KEY_ROWS, ids=[f"{r['model']}{r['cfg']}" for r in KEY_ROWS])
def test_zoo_state_dict_keys_unchanged(row):
    """The keys every zoo model had before the rebuild, in order (a checkpoint's contract)."""
    assert list(get_model(row["model"], **row["cfg"]).state_dict()) == row["keys"]


@pytest.mark.parametrize("case", sorted(OLD_CHECKPOINTS))
def test_checkpoint_written_before_the_rebuild_loads(case, tmp_path):
    from bitcycle.compile.export import load_checkpoint

    name, cfg = OLD_CHECKPOINTS[case]
    arrays = np.load(DATA / "checkpoint_before_brevitas_quantizers.npz")
    state = {k.split("/", 1)[1]: torch.from_numpy(arrays[k]) for k in arrays.files if k.startswith(f"{case}/")}
    path = tmp_path / "model.pt"
    torch.save({"model": name, "model_cfg": cfg, "state_dict": state}, path)
    model = load_checkpoint(path)  # strict: names every missing / unexpected key
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = model(torch.from_numpy(arrays[f"{case}:inputs"])).numpy()
    expected = arrays[f"{case}:logits"]
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)
    assert (logits.argmax(1) == expected.argmax(1)).all()


@pytest.mark.parametrize("bits", [2, 4, 8, 12, 16])
def test_input_quant_grid_follows_bits(bits):
    """Q1.(b−1): every output is k / 2^(b−1) with k in [−2^(b−1), 2^(b−1) − 1], all of them reached."""
    q = input_quant(bits).eval()
    half = 1 << (bits - 1)
    grid = torch.arange(-half, half, dtype=torch.float64) / half
    inj = q.act_quant.quant_injector
    assert (inj.min_val, inj.max_val) == (-1.0, 1.0 - 2.0 ** (1 - bits))
    assert float(q.act_quant.scale()) == 2.0 ** (1 - bits) and int(q.act_quant.bit_width()) == bits
    # the grid points, points a third of a step off them, and values beyond the range
    x = torch.cat([grid, grid + 1 / (3 * half), torch.tensor([-3.0, -1.0 - 1 / half, 1.0, 2.5], dtype=torch.float64)])
    y = q(x.float()).double()
    codes = y * half
    assert torch.equal(codes, torch.round(codes))
    assert torch.equal(torch.unique(y), grid)
    assert float(y.min()) == -1.0 and float(y.max()) == 1.0 - 2.0 ** (1 - bits)
    assert torch.equal(y[:half * 2], grid)  # grid points map to themselves


@pytest.mark.parametrize("bits", [0, 17, 8.0, True, "8"])
def test_input_quant_rejects_bits_outside_its_range(bits):
    with pytest.raises(BitCycleError, match=r"in_bits=.*1 \(sign\) or an integer bit width in 2\.\.16") as err:
        input_quant(bits)
    assert "\n" not in str(err.value)
    with pytest.raises(BitCycleError, match="in_bits="):
        get_model("tfc", in_bits=bits)


def test_one_bit_input_is_the_sign_of_2x_minus_1():
    """in_bits=1 (BNN-PYNQ's binarised input): pixel/255 ≥ 0.5 is +1, below is −1, exactly at the
    threshold the codes 127 and 128 fall either side."""
    model = get_model("tfc", in_bits=1).eval()
    q = model.features[0]
    x = torch.tensor([-3.0, -1.0, -1e-6, 0.0, 1e-6, 0.5, 1.0, 2.0])
    assert q(x).tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    pixels = torch.tensor([0.0, 127.0, 128.0, 255.0]) / 255
    assert q(2 * pixels - 1).tolist() == [-1.0, -1.0, 1.0, 1.0]


def test_binary_weights_keep_their_latent_values_and_straight_through_gradient():
    """±1 forward, gradient 1 per weight even outside [−1, 1], and the forward never clips the
    latent weights (Brevitas' default in-place clamp would: training clips once per step instead)."""
    layer = BinaryLinear(3, 2).train()
    latent = torch.tensor([[3.0, -2.0, 0.5], [-0.25, 1.5, -4.0]])
    with torch.no_grad():
        layer.weight.copy_(latent)
    assert torch.equal(layer.quant_weight().value, torch.sign(latent))
    y = layer(torch.ones(1, 3))
    assert torch.equal(y, torch.tensor([[1.0, -1.0]]))
    y.sum().backward()
    assert torch.equal(layer.weight.grad, torch.ones(2, 3))
    assert torch.equal(layer.weight.detach(), latent)
    layer.eval()
    with torch.no_grad():
        layer(torch.ones(1, 3))
    assert torch.equal(layer.weight.detach(), latent)


def test_binary_act_sign_and_clipped_straight_through():
    act = binary_act().train()
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = act(x)
    assert torch.equal(y.detach(), torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]))


def test_exported_quant_nodes_carry_the_constant_scales(tmp_path):
    """The QONNX graph: input Quant 4-bit Q1.3 (scale 1/8, not narrow), BipolarQuant weights and
    activations with scale 1, and an 8-bit narrow last layer with scale 1/127."""
    import onnx
    from onnx import numpy_helper

    from bitcycle.compile.export import export_qonnx, input_spec_for, prepare

    torch.manual_seed(0)
    model = get_model("sfc", width=8, depth=1, in_features=64, in_bits=4, last_weight_bits=8).eval()
    shape, pixel_max = input_spec_for(model)
    graph = onnx.load(str(export_qonnx(prepare(model, shape, pixel_max), tmp_path / "m.onnx"))).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    on_weights = [n for n in graph.node if n.op_type in ("Quant", "BipolarQuant") and n.input[0] in init]
    on_acts = [n for n in graph.node if n.op_type in ("Quant", "BipolarQuant") and n.input[0] not in init]
    assert [n.op_type for n in on_weights] == ["BipolarQuant", "Quant"]
    assert [n.op_type for n in on_acts] == ["Quant", "BipolarQuant"]

    def params(node):
        vals = tuple(init[i].item() for i in node.input[1:])  # one scale per tensor: size-1 arrays
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        return vals, attrs

    vals, attrs = params(on_acts[0])  # the input: (scale, zero point, bit width)
    assert vals == (1 / 8, 0.0, 4.0)
    assert (attrs["signed"], attrs["narrow"], attrs["rounding_mode"]) == (1, 0, b"ROUND")
    assert params(on_acts[1])[0] == (1.0,) and params(on_weights[0])[0] == (1.0,)
    (scale, zero, width), attrs = params(on_weights[1])  # the 8-bit last layer
    assert (np.float32(scale), zero, width) == (np.float32(1 / 127), 0.0, 8.0)
    assert (attrs["signed"], attrs["narrow"], attrs["rounding_mode"]) == (1, 1, b"ROUND")
