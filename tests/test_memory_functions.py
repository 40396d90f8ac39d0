"""The memory-efficient backward equals autograd's on the same binarised inputs.

With integer-valued dy (a quantised gradient) every product is an exact integer sum in float32,
so the matmul/conv gradients must be *equal*; BatchNorm runs torch's own kernels on its exactly
recomputed input, so it is equal too.
"""

import pytest
import torch

from bitcycle.errors import BitCycleError
from bitcycle.quant.memory import (
    int_batch_norm,
    packed_binary_conv2d,
    packed_binary_linear,
    standard_binary_conv2d,
    standard_binary_linear,
)

torch.set_num_threads(1)
SEED = 1234


def _leaf(t):
    return t.clone().requires_grad_(True)


def _int_grad(shape, g):
    return torch.randint(-8, 8, shape, generator=g).float()


@pytest.mark.parametrize("seed", range(4))
def test_linear_gradients_equal_autograd(seed):
    print("seed", SEED + seed)
    g = torch.Generator().manual_seed(SEED + seed)
    x = torch.randn(13, 37, generator=g) * 1.5  # some |x| > 1 so the clamp mask matters
    x[0, :5] = 0.0
    w = torch.randn(11, 37, generator=g)
    dy = _int_grad((13, 11), g)
    grads = []
    for fn in (standard_binary_linear, packed_binary_linear):
        xl, wl = _leaf(x), _leaf(w)
        y = fn(xl, wl)
        y.backward(dy)
        grads.append((y.detach(), xl.grad, wl.grad))
    for a, b in zip(*grads):
        assert torch.equal(a, b)
    assert (grads[0][1] == 0).any() and (grads[0][1] != 0).any()  # the mask did something


def test_linear_first_layer_8bit_input_and_grad_quant():
    g = torch.Generator().manual_seed(SEED)
    scale = 1 / 255
    x = torch.randint(0, 256, (9, 20), generator=g).float() * scale
    w = torch.randn(6, 20, generator=g)
    b = torch.randn(6, generator=g)
    dy = torch.randn(9, 6, generator=g)
    quant = lambda t: torch.round(t * 4)  # a deterministic stand-in gradient quantiser
    grads = []
    for fn in (standard_binary_linear, packed_binary_linear):
        wl, bl = _leaf(w), _leaf(b)
        y = fn(x, wl, bl, binarize_input=False, input_scale=scale, grad_quant=quant)
        y.backward(dy)
        grads.append((y.detach(), wl.grad, bl.grad))
    for a, b_ in zip(*grads):
        torch.testing.assert_close(a, b_, rtol=0, atol=1e-5)


def test_off_grid_input_is_refused():
    with pytest.raises(BitCycleError, match="not on an 8-bit grid"):
        packed_binary_linear(torch.rand(2, 8), torch.randn(3, 8), binarize_input=False, input_scale=1 / 255)
    with pytest.raises(BitCycleError, match="input_scale"):
        packed_binary_linear(torch.rand(2, 8), torch.randn(3, 8), binarize_input=False)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1)])
def test_conv_gradients_equal_autograd(stride, padding):
    g = torch.Generator().manual_seed(SEED + stride * 10 + padding)
    x = torch.randn(3, 4, 9, 9, generator=g) * 1.5
    w = torch.randn(5, 4, 3, 3, generator=g)
    out_hw = (9 + 2 * padding - 3) // stride + 1
    dy = _int_grad((3, 5, out_hw, out_hw), g)
    grads = []
    for fn in (standard_binary_conv2d, packed_binary_conv2d):
        xl, wl = _leaf(x), _leaf(w)
        y = fn(xl, wl, stride=stride, padding=padding)
        y.backward(dy)
        grads.append((y.detach(), xl.grad, wl.grad))
    for a, b in zip(*grads):
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
