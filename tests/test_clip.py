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


def test_exported_graph_has_8bit_data_and_finn_rounding(tmp_path):
    """QONNX carries an 8-bit Quant node (rounding_mode FLOOR) whose execution equals torch; FINN
    turns it into a 255-threshold MultiThreshold with INT8 output — but FINN 1.6.1's
    ConvertQONNXtoFINN ignores rounding_mode and places the thresholds for round-half-up, so on an
    odd accumulator with scale 2 FINN's code is one higher than torch's, the engine's CLIP8 and
    QONNX's. Odd K = 511 and scale 2 make such cases; the test pins the exact disagreement: a clip
    layer must be mapped to the engine's CLIP8 stage, not compiled as FINN thresholds."""
    import qonnx.core.onnx_exec as oxe
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile import passes as P
    from bitcycle.golden.stream import clip8
    from bitcycle.nets.layers import BinaryLinear, binary_act

    torch.manual_seed(SEED)
    model = torch.nn.Sequential(binary_act(), BinaryLinear(511, 8), ClipBlock(256.0)).eval()
    assert model[2].shift() == 1
    path = tmp_path / "clip.onnx"
    export_qonnx(model, input_t=torch.randn(1, 511), export_path=str(path))
    qonnx = ModelWrapper(str(path))
    quants = [n for n in qonnx.graph.node if n.op_type == "Quant"]
    assert int(qonnx.get_initializer(quants[-1].input[3])) == 8  # 8-bit data between layers
    assert float(qonnx.get_initializer(quants[-1].input[1])) == 2.0  # power-of-two scale
    finn = qonnx.transform(P.TidyUp()).transform(P.ToFinn())
    mts = [n for n in finn.graph.node if n.op_type == "MultiThreshold"]
    assert finn.get_tensor_datatype(mts[-1].output[0]).name == "INT8"
    assert finn.get_initializer(mts[-1].input[1]).shape == (1, 255)
    g = torch.Generator().manual_seed(SEED)
    odd = 0
    for _ in range(60):
        x = torch.randn(1, 511, generator=g)
        with torch.no_grad():
            ref = model(x).numpy()
            acc = model[1](model[0](x)).numpy().astype(np.int64)
        np.testing.assert_array_equal(ref, 2.0 * clip8(acc, 1))  # torch = engine CLIP8
        got_qonnx = oxe.execute_onnx(qonnx, {qonnx.graph.input[0].name: x.numpy()})[qonnx.graph.output[0].name]
        np.testing.assert_array_equal(got_qonnx, ref)  # QONNX honours FLOOR
        got_finn = oxe.execute_onnx(finn, {finn.graph.input[0].name: x.numpy()})[finn.graph.output[0].name]
        half_up = np.clip(np.floor(acc / 2 + 0.5), -128, 127) * 2.0
        np.testing.assert_array_equal(got_finn, half_up)  # FINN: round half up, FLOOR ignored
        odd += int((acc % 2 == 1).sum())
        assert np.array_equal(got_finn != ref, (acc % 2 == 1) & (acc > -256) & (acc < 255))  # exactly the odd, unsaturated acc
    assert odd > 0


def test_bad_max_val():
    with pytest.raises(BitCycleError, match="max_val"):
        ClipBlock(0.0)
