"""The memory-efficient backward equals autograd's on the same quantised operands.

With integer-valued dy (a quantised gradient) every product is an exact integer sum in float32,
so the linear/conv gradients of ``packed_operand_product`` (x saved packed or as int8 codes) must
*equal* plain autograd's; BatchNorm runs torch's own kernels on its exactly recomputed input, so it
is equal too.
"""

import pytest
import torch
import torch.nn.functional as F

from bitcycle.errors import BitCycleError
from bitcycle.quant.memory import int_batch_norm, packed_operand_product

torch.set_num_threads(1)
SEED = 1234


def _leaf(t):
    return t.clone().requires_grad_(True)


def _int_grad(shape, g):
    return torch.randint(-8, 8, shape, generator=g).float()


def _pm1(shape, g):
    return torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)


def _both(x, w, dy, conv_args=None, input_scale=None):
    """(y, dx, dW) of the packed product and of plain autograd on the same operands."""
    out = []
    for packed in (False, True):
        xl, wl = _leaf(x), _leaf(w)
        if packed:
            y = packed_operand_product(xl, wl, conv_args, input_scale=input_scale)
        elif conv_args is None:
            y = F.linear(xl, wl)
        else:
            y = F.conv2d(xl, wl, None, *conv_args)
        y.backward(dy)
        out.append((y.detach(), xl.grad, wl.grad))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_linear_gradients_equal_autograd(seed):
    print("seed", SEED + seed)
    g = torch.Generator().manual_seed(SEED + seed)
    x, w, dy = _pm1((13, 37), g), _pm1((11, 37), g), _int_grad((13, 11), g)
    std, packed = _both(x, w, dy)
    for a, b in zip(std, packed):
        assert torch.equal(a, b)
    assert (packed[2] != 0).any()  # dW is not trivially zero


def test_linear_first_layer_8bit_input():
    """The 8-bit first-layer input is saved as its int8 codes and decoded exactly."""
    g = torch.Generator().manual_seed(SEED)
    scale = 1 / 127
    x = torch.randint(-128, 128, (9, 20), generator=g).float() * scale
    w, dy = _pm1((6, 20), g), _int_grad((9, 6), g)
    std, packed = _both(x, w, dy, input_scale=scale)
    for a, b in zip(std, packed):
        assert torch.equal(a, b)


def test_off_grid_input_is_refused():
    with pytest.raises(BitCycleError, match="neither"):
        packed_operand_product(_leaf(torch.rand(2, 8)), _leaf(torch.ones(3, 8)), input_scale=1 / 127)
    with pytest.raises(BitCycleError, match="neither"):  # no input_scale: only ±1 inputs can be packed
        packed_operand_product(_leaf(torch.rand(2, 8)), _leaf(torch.ones(3, 8)))


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1)])
def test_conv_gradients_equal_autograd(stride, padding):
    g = torch.Generator().manual_seed(SEED + stride * 10 + padding)
    x, w = _pm1((3, 4, 9, 9), g), _pm1((5, 4, 3, 3), g)
    out_hw = (9 + 2 * padding - 3) // stride + 1
    dy = _int_grad((3, 5, out_hw, out_hw), g)
    std, packed = _both(x, w, dy, conv_args=((stride, stride), (padding, padding), (1, 1), 1))
    for a, b in zip(std, packed):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dims,span", [((16, 7), 100), ((4, 6, 5, 5), 20000)])
def test_int_batch_norm_matches_torch(dims, span):
    g = torch.Generator().manual_seed(SEED + span)
    y = torch.randint(-span, span, dims, generator=g).float()
    dout = torch.randn(dims, generator=g)
    results = []
    for efficient in (False, True):
        bn = torch.nn.BatchNorm1d(dims[1]) if len(dims) == 2 else torch.nn.BatchNorm2d(dims[1])
        with torch.no_grad():
            bn.weight.copy_(torch.linspace(-1.5, 2, dims[1]))
            bn.bias.copy_(torch.linspace(-0.3, 0.4, dims[1]))
        yl = _leaf(y)
        out = int_batch_norm(yl, bn) if efficient else bn(yl)
        out.backward(dout)
        results.append((out.detach(), yl.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var))
    for a, b in zip(*results):
        assert torch.equal(a, b)  # torch's own kernels on the exactly recomputed input


def test_int_batch_norm_refuses_float_input():
    bn = torch.nn.BatchNorm1d(3)
    with pytest.raises(BitCycleError, match="layer2.bn: BatchNorm input is not a multiple"):
        int_batch_norm(torch.randn(4, 3), bn, name="layer2.bn")
