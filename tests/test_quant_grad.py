"""The gradient quantiser: b-bit integers, unbiased stochastic rounding, seeded, and in the layers
the backward products are exactly the engine's integer products (checked with the golden model)."""

import numpy as np
import pytest
import torch

from bitcycle.errors import BitCycleError
from bitcycle.golden import bitserial_matmul
from bitcycle.nets.layers import BinaryConv2d, BinaryLinear
from bitcycle.quant.grad import (fake_quantise_grad, grad_quant_state, load_grad_quant_state, quantise_grad,
                                 seed_grad_quant, set_grad_bits)

torch.set_num_threads(1)


def _gen(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8, 16])
def test_range_and_scale(bits):
    g = torch.randn(64, 33, generator=_gen(bits))
    q, s = quantise_grad(g, bits, _gen(1))
    assert q.dtype == torch.int32
    qmax = 1 if bits == 1 else 2 ** (bits - 1) - 1
    assert int(q.abs().max()) <= qmax
    if bits == 1:
        assert set(q.unique().tolist()) <= {-1, 1}
        assert float(s) == float(g.abs().max())
    else:
        assert float(s) == pytest.approx(float(g.abs().max()) / qmax, rel=1e-6)
    # each value lands on one of the two grid points around it
    err = (q.float() * s - g).abs()
    assert float(err.max()) <= float(s) * (2 if bits == 1 else 1) + 1e-6


def test_grid_values_are_exact():
    q0 = torch.tensor([[-7, -3, 0, 1, 7], [2, 5, -6, 4, -1]])
    g = q0.float() * 0.125
    q, s = quantise_grad(g, 4, _gen(3))
    assert torch.equal(q, q0.int()) and float(s) == 0.125


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_unbiased(bits):
    g = torch.tensor([0.3, -0.05, 0.71, -1.0, 0.0, 0.5])
    gen = _gen(7)
    n = 20000
    acc = torch.zeros_like(g)
    for _ in range(n // 100):
        batch = g.expand(100, -1).contiguous()
        q, s = quantise_grad(batch, bits, gen)
        acc += (q.float() * s).sum(0)
    mean = acc / n
    # per-value std ≤ s/2 (or s for b = 1); 5 sigma over 20000 samples
    sd = float(g.abs().max()) / (1 if bits == 1 else 2 ** (bits - 1) - 1)
    assert torch.allclose(mean, g, atol=5 * sd / n ** 0.5)


def test_seeded_and_32_is_identity():
    g = torch.randn(100)
    assert torch.equal(fake_quantise_grad(g, 3, _gen(5)), fake_quantise_grad(g, 3, _gen(5)))
    assert not torch.equal(fake_quantise_grad(g, 3, _gen(5)), fake_quantise_grad(g, 3, _gen(6)))
    assert fake_quantise_grad(g, 32, _gen(5)) is g
    q, s = quantise_grad(torch.zeros(4), 4, _gen(0))
    assert torch.equal(q, torch.zeros(4, dtype=torch.int32)) and float(s) == 1.0


def test_bad_bits():
    with pytest.raises(BitCycleError):
        quantise_grad(torch.ones(3), 0)
    with pytest.raises(BitCycleError):
        set_grad_bits(BinaryLinear(3, 2), 33)
    with pytest.raises(BitCycleError):
        set_grad_bits(BinaryLinear(3, 2), 0)


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_linear_backward_is_engine_product(bits):
    torch.manual_seed(bits)
    layer = BinaryLinear(37, 11).train()
    set_grad_bits(layer, bits)
    seed_grad_quant(layer, 42)
    x = torch.sign(torch.randn(5, 37)).requires_grad_(True)  # ±1 activations, as the engine sees them
    dy = torch.randn(5, 11)
    layer(x).backward(dy)

    gen = torch.Generator()
    gen.manual_seed(42 * 1000003)  # layer 0's seed (seed_grad_quant)
    q_dy, s_dy = quantise_grad(dy, bits, gen)  # first: dy at the layer output
    w = torch.sign(layer.weight.detach())
    w[w == 0] = 1
    w_np = w.numpy().astype(np.int8)
    # backward-data dxᵀ = Wᵀ·Q(dy)ᵀ — the engine's product, exact in integers
    dx_int = bitserial_matmul(np.ascontiguousarray(w_np.T), q_dy.numpy().T.astype(np.int64), bits)
    assert np.array_equal(np.rint(x.grad.numpy().T / float(s_dy)).astype(np.int64), dx_int)
    assert torch.allclose(x.grad, torch.from_numpy(dx_int.T).float() * s_dy, rtol=1e-6, atol=1e-6)
    # backward-weight dW = Q(dy)ᵀ·x, then quantised again to b bits (same generator, next draw)
    dw_int = bitserial_matmul(x.detach().numpy().T.astype(np.int8), q_dy.numpy().astype(np.int64), bits).T
    q_dw, s_dw = quantise_grad(torch.from_numpy(dw_int).float() * s_dy, bits, gen)
    assert torch.allclose(layer.weight.grad, q_dw.float() * s_dw, rtol=1e-5, atol=1e-6)


def test_fp32_backward_unchanged_and_eval_untouched():
    torch.manual_seed(0)
    layer = BinaryLinear(8, 4).train()
    x = torch.randn(3, 8, requires_grad=True)
    layer(x).sum().backward()
    ref = x.grad.clone()
    x.grad = None
    set_grad_bits(layer, 32)
    layer(x).sum().backward()
    assert torch.equal(x.grad, ref)


def test_conv_grad_is_quantised():
    torch.manual_seed(1)
    conv = BinaryConv2d(3, 4, 3, padding=1).train()
    set_grad_bits(conv, 2)
    seed_grad_quant(conv, 0)
    y = conv(torch.sign(torch.randn(2, 3, 6, 6)))
    y.backward(torch.randn_like(y))
    # dW quantised to 2 bits has at most the 3 levels {−s, 0, s}
    assert len(torch.unique(conv.weight.grad)) <= 3


def test_generator_state_roundtrip():
    layer = BinaryLinear(4, 4)
    seed_grad_quant(layer, 9)
    state = grad_quant_state(layer)
    a = torch.rand(3, generator=layer.grad_generator)
    load_grad_quant_state(layer, state)
    assert torch.equal(a, torch.rand(3, generator=layer.grad_generator))
    with pytest.raises(BitCycleError):
        load_grad_quant_state(layer, state * 2)
