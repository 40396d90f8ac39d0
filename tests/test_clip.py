"""The clipping block: 8-bit grid, power-of-two scale, straight-through, trained in, golden, export."""

import numpy as np
import pytest
import torch

from bitcycle.errors import BitCycleError
from bitcycle.golden.accwidth import min_acc_bits
from bitcycle.golden.thresholds import clip_shift8
from bitcycle.quant.clip import ClipBlock

torch.set_num_threads(1)
SEED = 99


@pytest.mark.parametrize("max_val,shift", [(128.0, 0), (1000.0, 3), (40.0, -1), (4096.0, 5)])
def test_grid_range_and_golden(max_val, shift):
    print("seed", SEED)
    block = ClipBlock(max_val)
    assert block.shift() == shift
    g = torch.Generator().manual_seed(SEED)
    acc = torch.randint(-20000, 20000, (4000,), generator=g).float()
    acc[:6] = torch.tensor([0.0, 1.0, 2.0, 3.0, -3.0, -5.0]) * (2 ** max(shift - 1, 0))  # halves: floor, not round
    out = block(acc)
    codes = out / block.scale()
    assert torch.equal(codes, torch.round(codes)) and codes.min() >= -128 and codes.max() <= 127
    np.testing.assert_array_equal(clip_shift8(acc.long().numpy(), shift), codes.detach().numpy().astype(np.int8))
    if shift >= 0:  # the engine's CLIP8 output stage (arithmetic shift + saturation) gives the same codes
        from bitcycle.golden.stream import clip8

        np.testing.assert_array_equal(clip8(acc.long().numpy(), shift), codes.detach().numpy())


def test_straight_through_gradient():
    block = ClipBlock(128.0)
    acc = torch.tensor([-300.0, -128.0, -5.0, 0.0, 7.0, 127.0, 200.0], requires_grad=True)
    block(acc).sum().backward()
    assert acc.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_clip_range_is_trained_in():
    """Data spanning ±2000 with the clip starting at ±128: learning the scale widens the clip."""
    torch.manual_seed(SEED)
    block = ClipBlock(128.0)
    opt = torch.optim.Adam(block.parameters(), lr=0.05)
    x = torch.randint(-2000, 2000, (2048,)).float()
    before = block.scale()
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(block(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert block.scale() >= 8 * before  # the clip now reaches ≥ ±1024
    assert torch.nn.functional.mse_loss(block(x), x) < torch.nn.functional.mse_loss(ClipBlock(128.0)(x), x)


def test_next_layer_accumulator_from_clip():
    assert ClipBlock.int_range() == (-128, 127)
    assert min_acc_bits(512, 8, x_range=ClipBlock.int_range()) == 18  # +512·128 needs the 18th bit


def test_exported_graph_has_8bit_data(tmp_path):
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.nets.layers import BinaryLinear, binary_act

    model = torch.nn.Sequential(binary_act(), BinaryLinear(16, 8), ClipBlock(64.0)).eval()
    path = tmp_path / "clip.onnx"
    export_qonnx(model, input_t=torch.randn(1, 16), export_path=str(path))
    wrapper = ModelWrapper(str(path))
    quant_bits = []
    for node in wrapper.graph.node:
        if node.op_type == "Quant":
            quant_bits.append(int(wrapper.get_initializer(node.input[3])))
    assert quant_bits[-1] == 8  # the block's output: 8-bit data between layers
    final = [n for n in wrapper.graph.node if n.op_type == "Quant"][-1]
    assert float(wrapper.get_initializer(final.input[1])) == 0.5  # power-of-two scale (64/128)


def test_bad_max_val():
    with pytest.raises(BitCycleError, match="max_val"):
        ClipBlock(0.0)
