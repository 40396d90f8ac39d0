"""The driver's fast host paths equal the straightforward implementations they replaced, bit for bit.

Each ``_ref_*`` below is the previous implementation, kept verbatim as the reference: the gradient
quantiser (float64 copies, moved/padded blocks, broadcast scales), the pow2 scales, the folding of
block scales, sign, Adam, and the golden stream packer/unpacker (``bitcycle.golden.stream``, the
engine's contract) against the driver's vectorised twins in ``bitcycle.driver.protocol``.
"""

from __future__ import annotations

import numpy as np
import pytest

from bitcycle.driver import hostmath, planning
from bitcycle.driver import protocol as P
from bitcycle.driver.hostmath import Adam, quantize_grad, quantize_grad_blocks, sign_pm1
from bitcycle.errors import BitCycleError
from bitcycle.golden import stochastic
from bitcycle.golden import stream as S

SEED = 20240611


# ----------------------------------------------------------------------------- references (the old code)
def _ref_pow2_block_scales(amax, qmax):
    a = np.asarray(amax, dtype=np.float64)
    zero = a == 0
    a1 = np.where(zero, 1.0, a)
    e = np.frexp(a1 / qmax)[1].astype(np.int64)
    e = np.where(np.ldexp(1.0, e - 1) * qmax >= a1, e - 1, e)
    e = np.where(np.ldexp(1.0, e) * qmax < a1, e + 1, e)
    row_max = np.where(zero, np.iinfo(np.int32).min, e).max(axis=2, keepdims=True)
    e = np.maximum(e, row_max - stochastic.POW2_SPAN)
    return np.where(zero, 0.0, np.ldexp(1.0, np.where(zero, 0, e)))


def _ref_blocks(g, keep, block_axis, block):
    shape = g.shape
    if keep is None:
        return g.reshape(1, 1, 1, -1), lambda G: G.reshape(shape)
    keep = keep % g.ndim
    t = np.moveaxis(g, keep, 0)
    if block and block_axis is not None and block < shape[block_axis % g.ndim]:
        bd = block_axis % g.ndim
        bd = bd + 1 if bd < keep else bd
        t = np.moveaxis(t, bd, -1)
        moved, n = t.shape, t.shape[-1]
        pad = (-n) % block
        if pad:
            t = np.pad(t, [(0, 0)] * (t.ndim - 1) + [(0, pad)])
        G = t.reshape(t.shape[0], -1, (n + pad) // block, block)

        def unblock(A):
            a = np.broadcast_to(A, G.shape).reshape(*moved[:-1], -1)[..., :n]
            return np.moveaxis(np.moveaxis(a, -1, bd), 0, keep)
        return G, unblock
    G = t.reshape(t.shape[0], 1, 1, -1)
    rest = t.shape
    return G, lambda A: np.moveaxis(np.broadcast_to(A, G.shape).reshape(rest), 0, keep)


def _ref_quantize_grad(g, bits, key, keep_axis=None, block_axis=None, block=0, pow2=False):
    g64 = np.asarray(g, dtype=np.float64)
    G64, unblock = _ref_blocks(g64, keep_axis, block_axis, block)
    amax = np.abs(G64).max(axis=(1, 3), keepdims=True) if G64.size else np.zeros((1, 1, 1, 1))
    if not np.all(np.isfinite(amax)):
        raise BitCycleError("not finite")
    rows = keep_axis is not None
    if not rows and amax.max() == 0.0:
        return np.zeros(g64.shape, dtype=np.int64) if bits > 1 else np.ones(g64.shape, dtype=np.int64), 0.0
    G = G64.astype(np.float32)
    u = stochastic.counter_uniform(G.shape, key)
    zero = amax == 0
    safe = np.where(zero, 1.0, amax)
    if pow2 and rows:
        qmax = 1 if bits == 1 else (1 << (bits - 1)) - 1
        amax32 = np.abs(G).max(axis=(1, 3), keepdims=True)
        scale = _ref_pow2_block_scales(amax32, qmax)
        s32 = np.where(amax32 == 0, 1.0, scale).astype(np.float32)
        if bits == 1:
            q = np.where(u * np.float32(2.0) - np.float32(1.0) < G / s32, 1, -1)
        else:
            q = np.clip(np.floor(G / s32 + u), -qmax, qmax)
    elif bits == 1:
        q = np.where(u * np.float32(2.0) - np.float32(1.0) < G / safe.astype(np.float32), 1, -1)
        scale = amax
    else:
        qmax = (1 << (bits - 1)) - 1
        q = np.clip(np.floor(G / (safe.astype(np.float32) / np.float32(qmax)) + u), -qmax, qmax)
        scale = np.where(zero, 0.0, safe / qmax)
    q = np.ascontiguousarray(unblock(q)).astype(np.int64)
    if keep_axis is None:
        return q, float(scale.reshape(()))
    keep = keep_axis % g64.ndim
    if bool(block) and block_axis is not None and block < g64.shape[block_axis % g64.ndim]:
        return q, np.ascontiguousarray(unblock(scale))
    out = [1] * g64.ndim
    out[keep] = g64.shape[keep]
    return q, scale.reshape(out)


def _ref_int_bits(values):
    from bitcycle.golden.accwidth import signed_width

    v = np.asarray(values)
    if v.size == 0 or np.all(np.abs(v) == 1):
        return 1
    peak = int(np.abs(v).max())
    return max(2, signed_width(-peak, peak))


# planning.fold_scales is the unchanged reference (the blocked fold in hostmath must equal it)
_ref_fold_scales = planning.fold_scales


def _ref_adam_step(state, t, params, grads, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
    t += 1
    c1 = 1 - beta1 ** t
    c2 = 1 - beta2 ** t
    for name, g in grads.items():
        m, v = state.get(name, (np.zeros_like(g), np.zeros_like(g)))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        state[name] = (m, v)
        params[name] -= lr * (m / c1) / (np.sqrt(v / c2) + eps)
    return t


def _gradient(rng, shape):
    """Gradients as the training step makes them: rows (and blocks) of very different magnitude,
    an all-zero row and an all-zero block, exact powers of two, ±0."""
    g = rng.standard_normal(shape) * np.exp(rng.uniform(-12, 2, (shape[0],) + (1,) * (len(shape) - 1)))
    flat = g.reshape(shape[0], -1)
    if shape[0] > 3:
        flat[3] = 0.0
    if flat.shape[1] > 20:
        flat[1, 3:19] *= 1e-5
        flat[2, :16] = 0.0
        flat[0, 5] = 0.125
        flat[0, 6] = -0.0
    return g


QUANT_CASES = [
    ((23, 37), None, None, 0), ((23, 37), 0, None, 0), ((23, 37), 1, None, 0), ((23, 37), -1, None, 0),
    ((40, 64), 0, 1, 16), ((40, 64), 1, 0, 16), ((256, 64), 1, 0, 16), ((10, 64), 1, 0, 16), ((10, 256), 0, 1, 16),
    ((23, 37), 0, 1, 16), ((23, 37), 1, 0, 5), ((37, 23), 1, 0, 16), ((9, 4, 5), 1, 0, 4), ((9, 4, 5), 0, 2, 3),
    ((6, 5, 7), 2, 0, 4), ((6, 5, 7), 1, 2, 2), ((40, 64), 0, 1, 64), ((40, 64), 0, 1, 100), ((7, 33), 0, 1, 1),
]


@pytest.mark.parametrize("pow2", [False, True], ids=["row", "pow2"])
@pytest.mark.parametrize("shape,keep,block_axis,block", QUANT_CASES)
def test_quantize_grad_equals_reference(shape, keep, block_axis, block, pow2):
    """Same codes (int64, g's shape), same scales (dtype, shape, value) as the previous quantiser."""
    rng = np.random.default_rng(SEED + len(shape) * 100 + (keep or 0) * 10 + block)
    for bits in (1, 2, 3, 4, 5, 8, 12):
        for dtype in (np.float64, np.float32):
            g = _gradient(rng, shape).astype(dtype)
            key = int(rng.integers(1 << 31))
            q, s = quantize_grad(g, bits, key, keep_axis=keep, block_axis=block_axis, block=block, pow2=pow2)
            q_ref, s_ref = _ref_quantize_grad(g, bits, key, keep, block_axis, block, pow2)
            assert q.dtype == q_ref.dtype == np.int64 and q.flags.c_contiguous
            np.testing.assert_array_equal(q, q_ref)
            if isinstance(s_ref, float):
                assert isinstance(s, float) and s == s_ref
            else:
                assert s.dtype == s_ref.dtype and s.shape == s_ref.shape
                np.testing.assert_array_equal(s, s_ref)
            qg = quantize_grad_blocks(g, bits, key, keep, block_axis, block, pow2)
            deq = qg.dequantised()
            assert deq.dtype == np.float64
            np.testing.assert_array_equal(deq, q_ref * s_ref)
            assert np.array_equal(np.signbit(deq), np.signbit(q_ref * s_ref))  # ±0 too
            if keep is not None:
                axis = tuple(d for d in range(len(shape)) if d != keep % len(shape))
                for max_bits in (16, 4, 2):
                    got = qg.folded(max_bits)
                    ref = _ref_fold_scales(q_ref, s_ref, axis if len(axis) > 1 else axis[0], max_bits)
                    assert (got is None) == (ref is None)
                    if ref is not None:
                        assert got[0].dtype in (np.int16, np.int64) and got[1] == ref[1]
                        np.testing.assert_array_equal(got[0], ref[0])
                        np.testing.assert_array_equal(got[2], ref[2])
                        assert got[2].shape == ref[2].shape


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e300 → float32, as before
def test_quantize_grad_all_zero_and_not_finite():
    for bits in (1, 4):
        for keep in (None, 0):
            g = np.zeros((5, 40))
            q, s = quantize_grad(g, bits, 3, keep_axis=keep, block_axis=None if keep is None else 1, block=16, pow2=keep is not None)
            q_ref, s_ref = _ref_quantize_grad(g, bits, 3, keep, None if keep is None else 1, 16, keep is not None)
            np.testing.assert_array_equal(q, q_ref)
            np.testing.assert_array_equal(s, s_ref)
    for bad in (np.nan, np.inf, -np.inf):
        g = np.ones((4, 32))
        g[2, 7] = bad
        for pow2 in (False, True):
            with pytest.raises(BitCycleError, match="not finite"):
                quantize_grad(g, 4, 1, keep_axis=0, block_axis=1, block=16, pow2=pow2)
    # beyond float32's range but finite: no error (as before: float64 decides)
    g = np.ones((4, 32))
    g[1, 3] = 1e300
    q, s = quantize_grad(g, 4, 1, keep_axis=0, block_axis=1, block=16, pow2=True)
    assert q.shape == g.shape


def test_quantize_grad_draws_one_key_per_call_from_a_generator():
    g = np.random.default_rng(SEED).standard_normal((16, 32))
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for keep, pow2 in [(None, False), (0, False), (1, True)]:
        q, _ = quantize_grad(g, 3, a, keep_axis=keep, block_axis=None if keep is None else 1 - keep, block=8, pow2=pow2)
        key = int(b.integers(0, 1 << 31))
        q_ref, _ = _ref_quantize_grad(g, 3, key, keep, None if keep is None else 1 - keep, 8, pow2)
        np.testing.assert_array_equal(q, q_ref)


def test_pow2_block_scales_equal_reference():
    rng = np.random.default_rng(SEED + 1)
    for qmax in (1, 3, 7, 127, 32767):
        a = np.abs(rng.standard_normal((50, 1, 6, 1)) * np.exp(rng.uniform(-40, 40, (50, 1, 6, 1)))).astype(np.float32)
        a[3] = 0.0
        a[4, 0, 2] = 0.0
        a[5, 0, 1] = np.float32(2.0 ** -7 * qmax)  # amax/qmax exactly a power of two
        a[6, 0, :] = np.float32(1e-44)  # subnormal
        got = stochastic.pow2_block_scales(a, qmax)
        ref = _ref_pow2_block_scales(a, qmax)
        assert got.dtype == ref.dtype == np.float64 and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(stochastic.pow2_block_scales(a.astype(np.float64), float(qmax)), ref)


@pytest.mark.parametrize("qmax", [1, 3, 7, 15, 127, 2047, 32767, (1 << 23) - 1, 1.0, 7.0])
def test_pow2_block_scales_float32_bit_fields_equal_reference(qmax):
    """float32 maxima take the bit-field path: every positive normal float32 pattern class, ties
    (a = qmax·2^k exactly) and their neighbours, zeros, and the fallback (subnormal, −0)."""
    rng = np.random.default_rng(SEED + int(qmax))
    bits = rng.integers(0x00800000, 0x7F7FFFFF, (300, 1, 8, 1), dtype=np.int64).astype(np.int32)
    a = bits.view(np.float32).copy()
    ties = (np.float32(qmax) * np.ldexp(np.float32(1), rng.integers(-120, 100, 300))).astype(np.float32)
    a[:, 0, 0, 0] = ties
    a[:, 0, 1, 0] = np.nextafter(ties, np.float32(np.inf))
    a[:, 0, 2, 0] = np.nextafter(ties, np.float32(0))
    a[::7, 0, 3:5, 0] = 0.0
    a[5] = 0.0
    a[6, 0, 6:, 0] = rng.uniform(1, 2, 2) * a[6, 0, :6, 0].max()  # within a row: the span raises the small ones
    a = a[np.isfinite(a).all(axis=(1, 2, 3))]
    np.testing.assert_array_equal(stochastic.pow2_block_scales(a, qmax), _ref_pow2_block_scales(a, qmax))
    b = a.copy()
    b[0, 0, 3, 0] = np.float32(1e-40)  # subnormal: the float64 path
    b[1, 0, 3, 0] = -0.0
    np.testing.assert_array_equal(stochastic.pow2_block_scales(b, qmax), _ref_pow2_block_scales(b, qmax))


@pytest.mark.parametrize("shape", [(0, 3), (5, 7), (64, 64), (1,), (3, 4, 5)])
def test_int_bits_equals_reference(shape):
    rng = np.random.default_rng(SEED + 2)
    for hi in (1, 2, 3, 100, 40000):
        v = rng.integers(-hi, hi + 1, shape)
        assert planning.int_bits(v) == _ref_int_bits(v)
        pm1 = np.where(rng.random(shape) < 0.5, -1, 1)
        assert planning.int_bits(pm1) == _ref_int_bits(pm1)
        assert planning.int_bits(np.zeros(shape, np.int64)) == _ref_int_bits(np.zeros(shape, np.int64))


def test_sign_pm1_equals_reference():
    rng = np.random.default_rng(SEED + 4)
    x = rng.standard_normal((40, 30))
    x[0, :4] = [0.0, -0.0, np.nan, -np.inf]
    for a in (x, x.T, x[::2, 1:], x.astype(np.float32), np.int64(3), -2.0, [1, -1, 0]):
        got = sign_pm1(a)
        ref = np.where(np.asarray(a) >= 0, 1, -1).astype(np.int8)
        assert got.dtype == np.int8 and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)
    assert np.isfinite(x[1:]).all()  # the input is left alone
    np.testing.assert_array_equal(sign_pm1(x[1:]), np.where(x[1:] >= 0, 1, -1))


def test_adam_in_place_equals_reference():
    rng = np.random.default_rng(SEED + 5)
    params = {"w": rng.uniform(-1, 1, (20, 30)), "b": rng.standard_normal(30)}
    ref_params = {k: v.copy() for k, v in params.items()}
    opt, ref_state, t = Adam(lr=3e-3), {}, 0
    for _ in range(5):
        grads = {"w": rng.standard_normal((20, 30)) * 1e-3, "b": rng.standard_normal(30)}
        grads["w"][0, 0] = 0.0
        opt.step(params, grads)
        t = _ref_adam_step(ref_state, t, ref_params, grads, lr=3e-3)
        for k in params:
            np.testing.assert_array_equal(params[k], ref_params[k])
            for a, b in zip(opt.state[k], ref_state[k]):
                np.testing.assert_array_equal(a, b)
    assert opt.t == t


def test_adam_non_contiguous_and_scalar_params_equal_reference():
    rng = np.random.default_rng(SEED + 6)
    base = rng.uniform(-1, 1, (30, 20))
    params = {"wt": base.T, "s": np.array(0.5), "big": rng.uniform(-1, 1, hostmath.ADAM_CHUNK * 2 + 7)}
    ref_params = {"wt": base.copy().T.copy(), "s": np.array(0.5), "big": params["big"].copy()}
    opt, ref_state, t = Adam(), {}, 0
    for _ in range(3):
        grads = {"wt": rng.standard_normal((20, 30)), "s": np.array(rng.standard_normal()),
                 "big": rng.standard_normal(params["big"].shape)}
        opt.step(params, grads)
        t = _ref_adam_step(ref_state, t, ref_params, grads)
        for k in params:
            np.testing.assert_array_equal(params[k], ref_params[k])
    np.testing.assert_array_equal(base.T, params["wt"])  # updated in place through the view


def _ref_bn_forward(bn, z, train):
    if train:
        mu = z.mean(axis=1)
        var = z.var(axis=1)
        n = z.shape[1]
        bn.running_mean = (1 - hostmath.BN_MOMENTUM) * bn.running_mean + hostmath.BN_MOMENTUM * mu
        bn.running_var = (1 - hostmath.BN_MOMENTUM) * bn.running_var + hostmath.BN_MOMENTUM * var * n / max(n - 1, 1)
    else:
        mu, var = bn.running_mean, bn.running_var
    inv = 1.0 / np.sqrt(var + hostmath.BN_EPS)
    xhat = (z - mu[:, None]) * inv[:, None]
    return bn.gamma[:, None] * xhat + bn.beta[:, None], (xhat, inv)


def _ref_bn_backward(bn, dy, cache):
    xhat, inv = cache
    n = dy.shape[1]
    dgamma = (dy * xhat).sum(axis=1)
    dbeta = dy.sum(axis=1)
    dxhat = dy * bn.gamma[:, None]
    dz = inv[:, None] / n * (n * dxhat - dxhat.sum(axis=1, keepdims=True) - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))
    return dz, dgamma, dbeta


@pytest.mark.parametrize("norm", ["batchnorm", "pertensor"])
def test_batchnorm_in_place_equals_reference(norm):
    import copy

    rng = np.random.default_rng(SEED + 7)
    cls = hostmath.BatchNorm if norm == "batchnorm" else hostmath.PerTensorNorm
    bn = cls(48)
    bn.gamma = rng.uniform(0.5, 1.5, bn.features)
    bn.beta = rng.standard_normal(bn.features)
    ref = copy.deepcopy(bn)
    for train in (True, True, False):
        z = rng.integers(-300, 300, (48, 64)).astype(np.float64)
        y, cache = bn.forward(z, train)
        zr = z.reshape(1, -1) if norm == "pertensor" else z
        y_ref, cache_ref = _ref_bn_forward(ref, zr, train)
        np.testing.assert_array_equal(y, y_ref.reshape(y.shape))
        np.testing.assert_array_equal(bn.running_mean, ref.running_mean)
        np.testing.assert_array_equal(bn.running_var, ref.running_var)
        dy = rng.standard_normal(z.shape)
        got = bn.backward(dy, cache)
        want = _ref_bn_backward(ref, dy.reshape(zr.shape), cache_ref)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b.reshape(a.shape))


# ----------------------------------------------------------------------------- stream packing
@pytest.mark.parametrize("chunk", [1, 2, 4, 8, 16, 32, 64])
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 7, 8, 9, 12, 16])
def test_pack_vectors_equals_golden(bits, chunk):
    """The vectorised packer gives golden's words on ragged lengths (a partial last chunk), one
    vector, one value, any integer dtype."""
    rng = np.random.default_rng(SEED + 10 * bits + chunk)
    lo, hi = (-1, 1) if bits == 1 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    for length, n_vec in [(1, 1), (chunk, 3), (chunk + 1, 2), (3 * chunk - 1, 5), (100, 7), (64, 64)]:
        x = rng.integers(lo, hi + 1, (length, n_vec))
        if bits == 1:
            x = np.where(x >= 0, 1, -1)
        x[0, 0] = lo
        x[-1, -1] = hi
        ref = S.pack_vectors(x, bits, chunk)
        for dtype in (np.int64, np.int32, np.int16) + ((np.int8,) if bits <= 8 else ()):
            got = P.pack_vectors(x.astype(dtype), bits, chunk)
            assert got.dtype == np.uint64 and got.shape == ref.shape
            np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(P.pack_vectors(np.asfortranarray(x), bits, chunk), ref)
        np.testing.assert_array_equal(P.pack_vectors(x.T.copy().T, bits, chunk), ref)


@pytest.mark.parametrize("geo", [S.Geometry(4, 16, 32), S.Geometry(8, 32, 64), S.Geometry(2, 2, 32)], ids=str)
@pytest.mark.parametrize("res_bits", [8, 16, 32])
def test_unpack_output_equals_golden(geo, res_bits):
    rng = np.random.default_rng(SEED + res_bits + geo.pe)
    lo, hi = -(1 << (res_bits - 1)), (1 << (res_bits - 1)) - 1
    for mode in (S.MODE_FORWARD, S.MODE_BACKWARD_DATA, S.MODE_BACKWARD_WEIGHT):
        for m, k, n in [(1, 1, 1), (5, 7, 3), (10, 256, 64), (33, 17, 9)]:
            rows, n_vec = S.output_shape(mode, m, k, n)
            shape = (n_vec, rows) if mode == S.MODE_BACKWARD_WEIGHT else (rows, n_vec)
            result = rng.integers(lo, hi + 1, shape)
            result.flat[0], result.flat[-1] = lo, hi
            words = S.pack_output(result, mode, geo, res_bits)
            ref = S.unpack_output(words, mode, geo, m, k, n, res_bits)
            got = P.unpack_output(words, mode, geo, m, k, n, res_bits)
            assert got.dtype == ref.dtype == np.int64 and got.flags.c_contiguous
            np.testing.assert_array_equal(got, ref)
            np.testing.assert_array_equal(got, result)
            with pytest.raises(ValueError, match="output words"):
                P.unpack_output(words[:-1], mode, geo, m, k, n, res_bits)


def test_uniforms_view_equals_counter_uniform():
    for shape, key in [((3, 4), 5), ((1, 1, 4, 16), (1 << 20) - 3), ((2, 3, 1 << 19), 77)]:
        np.testing.assert_array_equal(hostmath._uniforms(shape, key), stochastic.counter_uniform(shape, key))


@pytest.mark.parametrize("geo", [S.Geometry(4, 16, 32), S.Geometry(2, 4, 32), S.Geometry(8, 32, 64), S.Geometry(1, 2, 64),
                                 S.Geometry(32, 32, 32), S.Geometry(16, 8, 64)], ids=str)
def test_pack_binary_tiles_equals_golden(geo):
    """Tiles narrower than a word (zero-filled), several words per tile, ragged rows and columns,
    views with any strides, and 0/1 planes (a tile bit is value > 0)."""
    rng = np.random.default_rng(SEED + geo.pe * geo.simd)
    for r, c in [(1, 1), (geo.pe, geo.simd), (geo.pe + 1, 2 * geo.simd - 1), (37, 50)]:
        b = np.where(rng.random((r, c)) < 0.5, -1, 1).astype(np.int8)
        ref = S.pack_binary_tiles(b, geo)
        for view in (b, b.astype(np.int64), np.asfortranarray(b), (b > 0).astype(np.uint8)):
            np.testing.assert_array_equal(P.pack_binary_tiles(view, geo), ref)
        big = np.where(rng.random((2 * r, 3 * c)) < 0.5, -1, 1).astype(np.int8)
        np.testing.assert_array_equal(P.pack_binary_tiles(big[1::2, ::3], geo), S.pack_binary_tiles(big[1::2, ::3], geo))
        np.testing.assert_array_equal(P.pack_binary_tiles(big.T[:c, :r].T, geo), S.pack_binary_tiles(big.T[:c, :r].T, geo))
