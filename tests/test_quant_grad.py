"""The gradient quantiser: b-bit integers, unbiased stochastic rounding, seeded, and in the layers
the backward products are exactly the engine's integer products (checked with the golden model)."""

import numpy as np
import pytest
import torch

from bitcycle.errors import BitCycleError
from bitcycle.golden import bitserial_matmul
from bitcycle.nets.layers import BinaryConv2d, BinaryLinear
from bitcycle.quant.grad import (fake_quantise_grad, grad_quant_state, load_grad_quant_state, quantise_grad,
                                 seed_grad_quant, set_grad_bits, set_grad_scale)

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
def test_linear_backward_is_engine_product_tensor_scale(bits):
    torch.manual_seed(bits)
    layer = BinaryLinear(37, 11).train()
    set_grad_scale(layer, "tensor")
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


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_linear_backward_is_engine_product_row_scale(bits):
    """Row scales: dx from dy quantised per sample, dW from dy quantised per output channel — both
    the engine's integer products times one scale per output row, then dW quantised per channel."""
    torch.manual_seed(bits)
    layer = BinaryLinear(37, 11).train()
    assert layer.grad_scale == "row"  # the default
    set_grad_scale(layer, "row", 0)  # one scale per whole row (blocks: the next test)
    set_grad_bits(layer, bits)
    seed_grad_quant(layer, 42)
    x = torch.sign(torch.randn(5, 37)).requires_grad_(True)
    dy = torch.randn(5, 11)
    dy[3] = 0  # a sample without error signal: its scale is 0, its dx exactly 0
    layer(x).backward(dy)

    gen = _gen(42 * 1000003)
    q_dx, s_dx = quantise_grad(dy, bits, gen, keep_dim=0)  # per sample: s_dx is [5, 1]
    q_dw, s_dw = quantise_grad(dy.T, bits, gen, keep_dim=0)  # per output channel, as the [11, 5] operand
    q_dw, s_dw = q_dw.T, s_dw.T
    assert s_dx.shape == (5, 1) and s_dw.shape == (1, 11) and float(s_dx[3]) == 0.0
    w = torch.sign(layer.weight.detach())
    w[w == 0] = 1
    w_np = w.numpy().astype(np.int8)
    dx_int = bitserial_matmul(np.ascontiguousarray(w_np.T), q_dx.numpy().T.astype(np.int64), bits).T  # [5, 37]
    live = s_dx[:, 0] > 0
    assert np.array_equal(np.rint(x.grad[live].numpy() / s_dx[live].numpy()).astype(np.int64), dx_int[live.numpy()])
    assert torch.allclose(x.grad, torch.from_numpy(dx_int).float() * s_dx, rtol=1e-6, atol=1e-6)
    assert not x.grad[3].any()
    dw_int = bitserial_matmul(x.detach().numpy().T.astype(np.int8), q_dw.numpy().astype(np.int64), bits).T  # [11, 37]
    q_w, s_w = quantise_grad(torch.from_numpy(dw_int).float() * s_dw.T, bits, gen, keep_dim=0)
    assert torch.allclose(layer.weight.grad, q_w.float() * s_w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bits,block", [(2, 4), (3, 8), (8, 5)])
def test_linear_backward_block_scales_are_engine_products(bits, block):
    """Row scales in blocks: each block of the reduction axis is its own engine product (golden model),
    its integer result times the block's scale, summed on the host."""
    torch.manual_seed(bits + block)
    n, k, m = 12, 29, 18  # batch, inputs, outputs; neither 12 nor 18 is a multiple of every block
    layer = BinaryLinear(k, m).train()
    set_grad_scale(layer, "row", block)
    set_grad_bits(layer, bits)
    seed_grad_quant(layer, 3)
    x = torch.sign(torch.randn(n, k)).requires_grad_(True)
    dy = torch.randn(n, m) * torch.logspace(-2, 1, m)  # channels of very different ranges
    layer(x).backward(dy)

    gen = _gen(3 * 1000003)
    q_dx, s_dx = quantise_grad(dy, bits, gen, keep_dim=0, block_dim=1, block=block)  # per (sample, channel block)
    q_dw, s_dw = quantise_grad(dy.T, bits, gen, keep_dim=0, block_dim=1, block=block)  # per (channel, sample block)
    q_dw, s_dw = q_dw.T, s_dw.T
    assert s_dx.shape == (n, m) and s_dw.shape == (n, m)
    w_np = torch.where(layer.weight.detach() >= 0, 1, -1).numpy().astype(np.int8)
    x_np = x.detach().numpy().astype(np.int8)
    dx = np.zeros((n, k))
    for o0 in range(0, m, block):  # one engine job per block of output channels
        part = bitserial_matmul(np.ascontiguousarray(w_np[o0:o0 + block].T), q_dx[:, o0:o0 + block].numpy().T.astype(np.int64), bits)
        dx += part.T * s_dx[:, o0:o0 + 1].numpy()
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-5, atol=1e-6)
    dw = np.zeros((m, k))
    for n0 in range(0, n, block):  # one engine job per block of samples
        part = bitserial_matmul(np.ascontiguousarray(x_np[n0:n0 + block].T), q_dw[n0:n0 + block].numpy().astype(np.int64), bits).T
        dw += part * s_dw[n0:n0 + 1].numpy().T
    # dW itself: one scale per output channel and block of inputs
    q_w, s_w = quantise_grad(torch.from_numpy(dw).float(), bits, gen, keep_dim=0, block_dim=1, block=block)
    np.testing.assert_allclose(layer.weight.grad.numpy(), (q_w.float() * s_w).numpy(), rtol=1e-5, atol=1e-6)
    for i0 in range(0, k, block):  # every block of inputs uses its own full range (an all-zero block: code 0)
        live = (torch.from_numpy(dw[:, i0:i0 + block]).abs().amax(dim=1) > 0).int()
        assert torch.equal(q_w[:, i0:i0 + block].abs().amax(dim=1), live * (2 ** (bits - 1) - 1))
    # every block uses its own full range
    qmax = 2 ** (bits - 1) - 1
    for o0 in range(0, m, block):
        assert torch.equal(q_dx[:, o0:o0 + block].abs().amax(dim=1), torch.full((n,), qmax, dtype=torch.int32))


@pytest.mark.parametrize("block", [0, 4])
def test_conv_products_are_im2col_engine_products(block):
    """A conv's backward products as the engine runs them, lowered im2col style: backward-data
    Wᵀ·dy per position (dy scaled per position and block of output channels), overlap-added on
    the host; backward-weight dy·x_colsᵀ (dy scaled per channel and block of positions). Each
    block is an exact golden product times its scale."""
    torch.manual_seed(6 + block)
    n, c, o, size, bits = 3, 2, 6, 6, 2
    conv = BinaryConv2d(c, o, 3).train()  # valid conv: ±1 patches, as the zoo's CNV
    set_grad_scale(conv, "row", block)
    set_grad_bits(conv, bits)
    seed_grad_quant(conv, 1)
    x = torch.sign(torch.randn(n, c, size, size)).requires_grad_(True)
    dy = torch.randn(n, o, size - 2, size - 2)
    conv(x).backward(dy)
    gen = _gen(1 * 1000003)
    pos = n * (size - 2) ** 2
    dy_pos = dy.permute(0, 2, 3, 1).reshape(pos, o)  # backward-data operand: [positions, channels]
    q_dx, s_dx = quantise_grad(dy_pos, bits, gen, keep_dim=0, block_dim=1, block=block)
    dy_ch = dy.permute(1, 0, 2, 3).reshape(o, pos)  # backward-weight operand: [channels, positions]
    q_dw, s_dw = quantise_grad(dy_ch, bits, gen, keep_dim=0, block_dim=1, block=block)
    w_mat = torch.where(conv.weight.detach() >= 0, 1, -1).reshape(o, c * 9).numpy().astype(np.int8)
    x_cols = torch.nn.functional.unfold(x.detach(), 3).permute(0, 2, 1).reshape(pos, c * 9).numpy().astype(np.int8)
    step_o, step_p = block or o, block or pos
    s_dx, s_dw = s_dx.expand(pos, o).numpy(), s_dw.expand(o, pos).numpy()
    dx_cols = np.zeros((pos, c * 9))
    for o0 in range(0, o, step_o):
        part = bitserial_matmul(np.ascontiguousarray(w_mat[o0:o0 + step_o].T), q_dx[:, o0:o0 + step_o].numpy().T.astype(np.int64), bits)
        dx_cols += part.T * s_dx[:, o0:o0 + 1]
    dx = torch.nn.functional.fold(torch.from_numpy(dx_cols).float().reshape(n, -1, c * 9).permute(0, 2, 1), (size, size), 3)
    assert torch.allclose(x.grad, dx, rtol=1e-4, atol=1e-5)  # float sums in another order
    dw = np.zeros((o, c * 9))
    for p0 in range(0, pos, step_p):
        part = bitserial_matmul(np.ascontiguousarray(x_cols[p0:p0 + step_p].T), q_dw[:, p0:p0 + step_p].numpy().T.astype(np.int64), bits)
        dw += part.T * s_dw[:, p0:p0 + 1]
    # dW itself: per output channel and block of its c·3·3 inputs
    q_w, s_w = quantise_grad(torch.from_numpy(dw).float(), bits, gen, keep_dim=0, block_dim=1, block=block)
    assert torch.allclose(conv.weight.grad.reshape(o, -1), q_w.float() * s_w, rtol=1e-4, atol=1e-5)
    assert all(len(torch.unique(q_w[k])) <= 3 for k in range(o))  # 2 bits: {−1, 0, 1}


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_row_quantiser_range_and_unbiased(bits):
    rows = torch.randn(6, 40, generator=_gen(bits)) * torch.logspace(-3, 2, 6).reshape(6, 1)
    q, s = quantise_grad(rows, bits, _gen(0), keep_dim=0)
    qmax = 1 if bits == 1 else 2 ** (bits - 1) - 1
    assert s.shape == (6, 1) and int(q.abs().max()) <= qmax
    # each row uses its full code range: its own max |g| lands on ±qmax
    assert torch.equal(q.abs().amax(dim=1), torch.full((6,), qmax, dtype=torch.int32))
    gen = _gen(1)
    mean = sum(fake_quantise_grad(rows, bits, gen, keep_dim=0) for _ in range(2000)) / 2000
    assert torch.allclose(mean, rows, rtol=0, atol=float(5 * s.max() * qmax / 2000 ** 0.5))


def test_bad_grad_scale():
    with pytest.raises(BitCycleError, match="gradient scale 'col'"):
        set_grad_scale(BinaryLinear(3, 2), "col")
    with pytest.raises(BitCycleError, match="gradient block -1"):
        set_grad_scale(BinaryLinear(3, 2), "row", -1)


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
    # dW quantised to 2 bits has at most the 3 levels {−s, 0, s} per output channel and block of 16 of its 27 inputs
    rows = conv.weight.grad.reshape(4, 27)
    assert all(len(torch.unique(rows[o, i0:i0 + 16])) <= 3 for o in range(4) for i0 in (0, 16))
    assert any(len(torch.unique(rows[o])) > 3 for o in range(4))  # two blocks: two scales
    set_grad_scale(conv, "tensor")  # ... and in the whole tensor with one scale
    conv.weight.grad = None
    y = conv(torch.sign(torch.randn(2, 3, 6, 6)))
    y.backward(torch.randn_like(y))
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


# ----------------------------------------------------------------------------- counter-based uniforms
@pytest.mark.parametrize("shape,keep,block_dim,block", [((7, 33), None, None, 0), ((7, 33), 0, None, 0), ((7, 33), 1, None, 0),
                                                         ((7, 33), 0, 1, 16), ((9, 4, 5), 1, 0, 4), ((1100, 1000), 0, 1, 16)])
def test_numpy_codes_equal_torch_codes(shape, keep, block_dim, block):
    """Same key ⇒ the driver's numpy quantiser gives exactly torch's codes (the last shape has more than L = 2^20 values)."""
    from bitcycle.driver.hostmath import quantize_grad

    rng = np.random.default_rng(11)
    for bits in (1, 2, 3, 5, 8):
        g = rng.normal(size=shape) * np.exp(rng.normal(size=shape))
        key = int(rng.integers(1 << 31))
        q_np, _ = quantize_grad(g, bits, key, keep_axis=keep, block_axis=block_dim, block=block)
        q_t, _ = quantise_grad(torch.from_numpy(g).float(), bits, key, keep_dim=keep, block_dim=block_dim, block=block)
        assert np.array_equal(q_np, q_t.numpy())
        q_other, _ = quantise_grad(torch.from_numpy(g).float(), bits, key + 1, keep_dim=keep, block_dim=block_dim, block=block)
        assert not torch.equal(q_other, q_t)


def test_uniform_table_is_a_grid_permutation():
    """T holds every (j + ½)/L exactly once, so each u is uniform on the grid; the table is doubled for windows."""
    from bitcycle.driver import hostmath
    from bitcycle.quant import grad

    t = grad.uniform_table().numpy()
    L = 1 << grad.UNIFORM_BITS
    assert t.shape == (2 * L,) and np.array_equal(t[:L], t[L:])
    assert np.array_equal(np.sort(t[:L]), (np.arange(L, dtype=np.float32) + np.float32(0.5)) / np.float32(L))
    assert np.array_equal(t, hostmath.uniform_table())
    u = grad.counter_uniform((3, 4), 5)
    assert np.array_equal(u.numpy().ravel(), t[5:17])


def test_generator_draws_one_key_per_call():
    """A torch.Generator advances by one scalar draw per call, whatever the tensor size."""
    g = torch.randn(300, 300)
    a, b = _gen(4), _gen(4)
    fake_quantise_grad(g, 4, a)
    torch.randint(0, 1 << 31, (1,), generator=b)
    assert torch.equal(a.get_state(), b.get_state())
