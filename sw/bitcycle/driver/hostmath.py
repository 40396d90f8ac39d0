"""The host (ARM core) half of a training step, in numpy: input quantisation, BatchNorm, softmax
cross-entropy, gradient quantisation with (counter-based) stochastic rounding, and Adam on latent weights.

The three matrix products are not here: they run on the engine (``Accelerator``). No torch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from bitcycle.errors import BitCycleError
from bitcycle.golden import stochastic

BN_EPS = 1e-4  # as the torch zoo (bitcycle.nets)
BN_MOMENTUM = 0.1
ADAM_CHUNK = 16384  # values per run of Adam's elementwise update (its temporaries stay in cache)


def sign_pm1(a: np.ndarray) -> np.ndarray:
    """sign with sign(0) = +1 (the stored weight bit is 1 for w >= 0), as int8 ±1."""
    out = np.asarray(np.asarray(a) >= 0).view(np.int8)  # 1 / 0 (NaN: 0, i.e. −1)
    out += out  # 2 / 0: in place, the comparison's result is ours
    out -= 1
    return out


def quantize_input(x: np.ndarray, bits: int, scale: float, offset: float) -> np.ndarray:
    lo, hi = (-1, 1) if bits == 1 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if bits == 1:
        return sign_pm1(np.asarray(x, dtype=np.float64) * scale + offset).astype(np.int64)
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * scale + offset), lo, hi).astype(np.int64)


# the stochastic-rounding table and the pow2 scales: one definition, shared with bitcycle.quant.grad
UNIFORM_BITS = stochastic.UNIFORM_BITS
POW2_SPAN = stochastic.POW2_SPAN
uniform_table = stochastic.uniform_table
counter_uniform = stochastic.counter_uniform
pow2_block_scales = stochastic.pow2_block_scales


def _key(rng) -> int:
    """The call's key: an int as given, else one 31-bit draw from a numpy Generator."""
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return int(rng) & 0x7FFFFFFF
    return int(rng.integers(0, 1 << 31))


class _Layout:
    """g laid out as G = [K, O, NB, B] (one scale per G[k, :, nb, :]), as
    ``bitcycle.quant.grad._Blocks``: the element order of G is the order of the uniforms.

    ``moved(a)`` is a view of an array of g's shape with the kept axis first and the block axis
    last (g's axes as G holds them); ``gather`` copies such an array into G's layout (zero padding
    at the end of the block axis), ``scatter`` a G-layout array (or one broadcastable against G,
    as the [K, 1, NB, 1] scales) back into g's shape. No moved, padded or broadcast copies."""

    def __init__(self, shape, keep: int | None, block_axis: int | None, block: int):
        self.shape = tuple(int(n) for n in shape)
        nd = len(self.shape)
        self.keep = None if keep is None else keep % nd
        self.pad = 0
        self.moved_shape: tuple[int, ...] = (math.prod(self.shape),)
        self.G = (1, 1, 1, self.moved_shape[0])
        self.blocked = False
        if self.keep is None:
            return
        bd = None if block_axis is None else block_axis % nd
        self.blocked = bool(block) and bd is not None and block < self.shape[bd]
        rest = [d for d in range(nd) if d != self.keep]
        if self.blocked and bd is not None:
            if bd == self.keep:
                raise BitCycleError("gradient blocks must run along another axis than the one kept")
            rest = [d for d in rest if d != bd] + [bd]
            n = self.shape[bd]
            self.pad = (-n) % block
            self.G = (self.shape[self.keep], math.prod(self.shape[d] for d in rest[:-1]),
                      (n + self.pad) // block, block)
        else:
            self.G = (self.shape[self.keep], 1, 1, math.prod(self.shape[d] for d in rest))
        self.axes = [self.keep] + rest
        self.moved_shape = tuple(self.shape[d] for d in self.axes)
        self.inverse = tuple(int(d) for d in np.argsort(self.axes))  # moved axes → g's

    def moved(self, a: np.ndarray) -> np.ndarray:
        if self.keep is None:
            return a.reshape(-1)
        return a.transpose(self.axes)

    def _padded_shape(self):
        return self.moved_shape[:-1] + (self.moved_shape[-1] + self.pad,)

    def gather(self, a: np.ndarray, dtype) -> np.ndarray:
        """a (g's shape) → a new C-contiguous G-layout array of ``dtype`` (cast as astype does)."""
        buf = np.empty(self._padded_shape(), dtype=dtype)
        if self.pad:
            buf[..., self.moved_shape[-1]:] = 0
            buf[..., :self.moved_shape[-1]] = self.moved(a)
        else:
            buf[...] = self.moved(a)
        return buf.reshape(self.G)

    def _view(self, out: np.ndarray):
        """out (g's shape) as a G-layout view, or None where that would need a copy (padding)."""
        if self.pad:
            return None
        v = self.moved(out).reshape(self.G)
        return v if np.may_share_memory(v, out) else None

    def scatter(self, A: np.ndarray, dtype) -> np.ndarray:
        """A (G's layout, or broadcastable against G) → a new C-contiguous array of g's shape."""
        out = np.empty(self.shape, dtype=dtype)
        self.scatter_into(out, A)
        return out

    def scatter_into(self, out: np.ndarray, A: np.ndarray) -> None:
        v = self._view(out)
        if v is not None:
            np.copyto(v, A, casting="unsafe")
            return
        src = np.broadcast_to(A, self.G).reshape(self._padded_shape())[..., :self.moved_shape[-1]]
        np.copyto(self.moved(out), src, casting="unsafe")

    def multiply(self, A: np.ndarray, S: np.ndarray, dtype, g_order: bool = False) -> np.ndarray:
        """A·S (both G-layout or broadcastable; the product in their result type, cast to ``dtype``)
        in g's shape: C-contiguous, or with ``g_order`` a view of an array in G's memory order
        (no transposed writes; for consumers that read any strides)."""
        if g_order and not self.pad:
            buf = np.empty(self.G, dtype=dtype)
            np.multiply(A, S, out=buf, casting="unsafe")
            if self.keep is None:
                return buf.reshape(self.shape)
            return buf.reshape(self.moved_shape).transpose(self.inverse)
        out = np.empty(self.shape, dtype=dtype)
        v = self._view(out)
        if v is not None:
            np.multiply(A, S, out=v, casting="unsafe")
        else:
            self.scatter_into(out, np.multiply(A, S, dtype=np.result_type(A, S)))
        return out


@functools.lru_cache(maxsize=64)
def _layout(shape: tuple, keep: int | None, block_axis: int | None, block: int) -> _Layout:
    """One _Layout per gradient shape and blocking (a training step asks for the same few every step)."""
    return _Layout(shape, keep, block_axis, block)


def _block_absmax(G: np.ndarray) -> np.ndarray:
    """max |G| over axes 1 and 3, keepdims: [K, 1, NB, 1]. numpy's reduction over a short inner
    axis (a block of 16) runs element by element: move the block axis to the front first and
    reduce elementwise across whole rows instead (max is exact: the same values)."""
    k, o, nb, b = G.shape
    a = np.abs(G)
    if nb == 1:  # one long run per row: numpy's own reduction is fast
        return a.max(axis=(1, 3), keepdims=True)
    t = np.ascontiguousarray(a.transpose(1, 3, 0, 2)).reshape(o * b, k * nb)
    return t.max(axis=0).reshape(k, 1, nb, 1)


def _rows_min(A: np.ndarray) -> np.ndarray:
    """min over axes 1.. of a small [K, ...] array, keepdims (across whole rows, as _block_absmax)."""
    return A.reshape(A.shape[0], -1).T.copy().min(axis=0).reshape((A.shape[0],) + (1,) * (A.ndim - 1))


def _uniforms(shape, key: int) -> np.ndarray:
    """``counter_uniform(shape, key)``, a read-only view of the table when it is one window."""
    starts = stochastic.window_starts(math.prod(shape), key)
    if len(starts) == 1:
        s, m = starts[0]
        return uniform_table()[s:s + m].reshape(shape)
    return counter_uniform(shape, key)


def _as_float(g) -> np.ndarray:
    """g as float32/float64 without changing a value float64 would hold (other dtypes → float64)."""
    g = np.asarray(g)
    return g if g.dtype in (np.float64, np.float32) else g.astype(np.float64)


class QuantizedGrad:
    """One call of the gradient quantiser in G's layout: integer-valued float32 codes ``qG``
    [K, O, NB, B] and float64 scales ``scaleG`` [K, 1, NB, 1] (scalar for one scale), with the
    maps back to g's shape. :func:`quantize_grad` returns ``codes()`` and ``scales()``; the
    training step takes the dequantised gradient and the folded codes from here directly, without
    int64 codes and broadcast scales in between (the same values)."""

    def __init__(self, lay: _Layout, qG: np.ndarray, scaleG, bits: int):
        self.lay, self.qG, self.scaleG, self.bits = lay, qG, scaleG, bits

    @property
    def shape(self):
        return self.lay.shape

    def codes(self) -> np.ndarray:
        """int64 codes in g's shape."""
        return self.lay.scatter(self.qG, np.int64)

    def scales(self):
        """The scale(s) as ``quantize_grad`` returns them: a float (one scale), 1 along every axis
        but the kept one (no blocks), else an array of g's shape."""
        lay = self.lay
        if lay.keep is None:
            return float(np.reshape(self.scaleG, ()))
        if lay.blocked:
            return lay.scatter(self.scaleG, np.float64)
        out = [1] * len(lay.shape)
        out[lay.keep] = lay.shape[lay.keep]
        return self.scaleG.reshape(out)

    def dequantised(self) -> np.ndarray:
        """codes · scales in float64 (exact products: small integers times the scales)."""
        if self.lay.keep is None:
            return self.codes() * self.scales()
        return self.lay.multiply(self.qG, self.scaleG, np.float64)

    def folded(self, max_bits: int):
        """:func:`bitcycle.driver.planning.fold_scales` of (codes, scales) summed over every axis but
        the kept one, computed on the blocks: (the integer codes·(s/s_min) in g's shape, their bits,
        s_min 1 along every axis but the kept one), or None (ratios not integers, or too wide).
        The codes are int16 where they fit (else int64), in G's memory order: what the packers need."""
        from bitcycle.driver.planning import int_bits

        lay = self.lay
        if lay.keep is None:
            raise BitCycleError("folding needs per-row scales")
        s = np.asarray(self.scaleG, dtype=np.float64)
        nonzero = s > 0
        s_min = _rows_min(np.where(nonzero, s, np.inf))
        s_min = np.where(np.isfinite(s_min), s_min, 0.0)
        ratio = np.where(nonzero, s / np.where(s_min > 0, s_min, 1.0), 0.0)
        r_max = ratio.max(initial=0.0)
        if not np.all(ratio == np.rint(ratio)) or r_max > 1 << max_bits:
            return None
        # q·ratio exactly: in float32 below 2^24; int16 codes when they fit (all the packers need)
        peak = r_max * (1 if self.bits == 1 else (1 << (self.bits - 1)) - 1)
        codes = lay.multiply(self.qG, ratio.astype(np.float32) if peak < 1 << 24 else ratio,
                             np.int16 if peak < 1 << 15 else np.int64, g_order=True)
        bits = int_bits(codes)
        if bits > max_bits:
            return None
        out = [1] * len(lay.shape)
        out[lay.keep] = lay.shape[lay.keep]
        return codes, bits, s_min.reshape(out)


def quantize_grad_blocks(g: np.ndarray, bits: int, rng, keep_axis: int | None = None,
                         block_axis: int | None = None, block: int = 0, pow2: bool = False) -> QuantizedGrad:
    """:func:`quantize_grad` as a :class:`QuantizedGrad` (same codes, same scales, one key drawn)."""
    gf = _as_float(g)
    lay = _layout(gf.shape, keep_axis, block_axis, int(block))
    rows = keep_axis is not None
    if pow2 and rows:  # block floating point: power-of-two scales (exact divisions in float32)
        G = lay.gather(gf, np.float32)
        amax32 = _block_absmax(G) if G.size else np.zeros((1, 1, 1, 1), np.float32)  # torch's are float32 too
        # float32 rounding is monotonic: a finite float32 maximum means every float64 value is
        # finite; otherwise ask float64 (values beyond float32's range are not an error)
        if not np.all(np.isfinite(amax32)) and not np.all(np.isfinite(gf)):
            raise BitCycleError("gradient is not finite (NaN/inf): lower the learning rate")
        key = _key(rng)
        u = _uniforms(G.shape, key)
        qmax = 1 if bits == 1 else (1 << (bits - 1)) - 1
        scale = pow2_block_scales(amax32, qmax)
        s32 = scale.astype(np.float32)
        s32[amax32 == 0] = 1.0
        if bits == 1:
            np.divide(G, s32, out=G)
            t = u * np.float32(2.0)
            t -= np.float32(1.0)
            q = np.less(t, G).view(np.int8).astype(np.float32)  # 1 / 0
            q += q
            q -= np.float32(1.0)  # ±1
        else:
            q = np.divide(G, s32, out=G)
            q += u
            np.floor(q, out=q)
            np.clip(q, -qmax, qmax, out=q)
        return QuantizedGrad(lay, q, scale, bits)
    G64 = lay.gather(gf, np.float64)
    amax = _block_absmax(G64) if G64.size else np.zeros((1, 1, 1, 1))
    if not np.all(np.isfinite(amax)):
        raise BitCycleError("gradient is not finite (NaN/inf): lower the learning rate")
    key = _key(rng)
    if not rows and amax.max() == 0.0:  # one scale, 0: every code 0 (b = 1: +1)
        return QuantizedGrad(lay, np.full(lay.G, 0 if bits > 1 else 1, dtype=np.float32), 0.0, bits)
    G = G64.astype(np.float32)
    u = _uniforms(G.shape, key)
    zero = amax == 0
    safe = np.where(zero, 1.0, amax)
    if bits == 1:
        # ±1 with P(+1) = (1 + g/amax)/2: unbiased for scale amax
        t = u * np.float32(2.0)
        t -= np.float32(1.0)
        q = np.where(t < np.divide(G, safe.astype(np.float32), out=G), np.float32(1.0), np.float32(-1.0))
        scale = amax
    else:
        qmax = (1 << (bits - 1)) - 1
        q = np.divide(G, safe.astype(np.float32) / np.float32(qmax), out=G)
        q += u
        np.floor(q, out=q)
        np.clip(q, -qmax, qmax, out=q)
        scale = np.where(zero, 0.0, safe / qmax)
    return QuantizedGrad(lay, q, scale, bits)


def quantize_grad(g: np.ndarray, bits: int, rng, keep_axis: int | None = None,
                  block_axis: int | None = None, block: int = 0,
                  pow2: bool = False) -> tuple[np.ndarray, float | np.ndarray]:
    """Symmetric quantisation of a float gradient to ``bits`` with stochastic rounding.

    Returns integer codes q (in [−(2^(b−1)−1), 2^(b−1)−1], or ±1 for b = 1) and the scale s with
    g ≈ s·q, unbiased: E[s·q] = g. The codes are what the engine consumes. ``keep_axis`` None: one
    scale for the tensor (a float); else one per index of that axis — and per run of ``block``
    indices of ``block_axis`` — as an array broadcastable against q (an all-zero slice gets scale
    0), as ``bitcycle.quant.grad`` does with ``keep_dim``/``block_dim``.

    ``rng``: a numpy Generator (one 31-bit key drawn per call) or the key itself. The codes are
    computed in float32 with the counter-based uniforms of ``bitcycle.quant.grad`` — for the same
    key they equal torch's codes exactly; the scale is returned in float64 (max|g| / qmax).
    """
    qg = quantize_grad_blocks(g, bits, rng, keep_axis, block_axis, block, pow2)
    return qg.codes(), qg.scales()


def softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy, its gradient w.r.t. logits [B, C], and the softmax."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    b = logits.shape[0]
    loss = float(-np.mean(np.log(p[np.arange(b), y] + 1e-12)))
    grad = p.copy()
    grad[np.arange(b), y] -= 1.0
    return loss, grad / b, p


@dataclass
class BatchNorm:
    """Per-feature BatchNorm over the batch axis of a [features, B] array."""

    features: int
    # None: the default (γ = 1, β = 0, mean 0, var 1), filled in by __post_init__
    gamma: np.ndarray = None  # type: ignore[assignment]
    beta: np.ndarray = None  # type: ignore[assignment]
    running_mean: np.ndarray = None  # type: ignore[assignment]
    running_var: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self):
        f = self.features
        self.gamma = np.ones(f) if self.gamma is None else np.asarray(self.gamma, dtype=np.float64)
        self.beta = np.zeros(f) if self.beta is None else np.asarray(self.beta, dtype=np.float64)
        self.running_mean = np.zeros(f) if self.running_mean is None else np.asarray(self.running_mean, np.float64)
        self.running_var = np.ones(f) if self.running_var is None else np.asarray(self.running_var, np.float64)

    def forward(self, z: np.ndarray, train: bool):
        if train:
            mu = z.mean(axis=1)
            var = z.var(axis=1)
            n = z.shape[1]
            self.running_mean = (1 - BN_MOMENTUM) * self.running_mean + BN_MOMENTUM * mu
            self.running_var = (1 - BN_MOMENTUM) * self.running_var + BN_MOMENTUM * var * n / max(n - 1, 1)
        else:
            mu, var = self.running_mean, self.running_var
        inv = 1.0 / np.sqrt(var + BN_EPS)
        xhat = z - mu[:, None]  # (z − μ)·inv, then γ·x̂ + β: in place, the same operations
        xhat *= inv[:, None]
        y = self.gamma[:, None] * xhat
        y += self.beta[:, None]
        return y, (xhat, inv)

    def backward(self, dy: np.ndarray, cache):
        """dz = inv/n · (n·dx̂ − Σdx̂ − x̂·Σ(dx̂·x̂)), dx̂ = dy·γ: in place, the same operations."""
        xhat, inv = cache
        n = dy.shape[1]
        t = dy * xhat
        dgamma = t.sum(axis=1)
        dbeta = dy.sum(axis=1)
        dxhat = dy * self.gamma[:, None]
        np.multiply(dxhat, xhat, out=t)
        s = t.sum(axis=1, keepdims=True)
        dz = n * dxhat
        dz -= dxhat.sum(axis=1, keepdims=True)
        np.multiply(xhat, s, out=t)
        dz -= t
        dz *= inv[:, None] / n
        return dz, dgamma, dbeta


class PerTensorNorm(BatchNorm):
    """One mean/variance/affine pair for the whole [features, B] tensor (FINN's TensorNorm, the
    torch zoo's last layer): BatchNorm over a single feature holding every value."""

    def __init__(self, features: int = 1, **kw):
        super().__init__(1, **kw)

    def forward(self, z: np.ndarray, train: bool):
        y, cache = super().forward(z.reshape(1, -1), train)
        return y.reshape(z.shape), (cache, z.shape)

    def backward(self, dy: np.ndarray, cache):
        inner, shape = cache
        dz, dgamma, dbeta = super().backward(dy.reshape(1, -1), inner)
        return dz.reshape(shape), dgamma, dbeta


@dataclass
class Adam:
    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    state: dict = field(default_factory=dict)
    t: int = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """In-place update of every array in ``params`` that has a gradient.

        m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g·g, p −= lr·(m/c1) / (√(v/c2) + ε): in place, each
        operation as that expression evaluates it (the same roundings), over runs of ADAM_CHUNK
        values of the flat arrays so the temporaries stay in cache."""
        self.t += 1
        b1, b2, lr, eps = self.beta1, self.beta2, self.lr, self.eps
        c1 = 1 - b1 ** self.t
        c2 = 1 - b2 ** self.t
        for name, g in grads.items():
            if name not in self.state:  # zeros of the dtype β1·0 would have
                dtype = np.result_type(g, 1.0)
                self.state[name] = (np.zeros(np.shape(g), dtype), np.zeros(np.shape(g), dtype))
            m, v = self.state[name]
            p = params[name]
            direct = p.flags.c_contiguous and p.shape == m.shape
            p_flat = p.reshape(-1) if direct else np.empty(m.size, dtype=m.dtype)  # else: the step, subtracted below
            g_flat, m_flat, v_flat = np.ascontiguousarray(g).reshape(-1), m.reshape(-1), v.reshape(-1)
            run = max(1, min(m.size, ADAM_CHUNK))
            t, d = np.empty(run, dtype=m.dtype), np.empty(run, dtype=m.dtype)
            for s in range(0, m.size, run):
                gg, mm, vv = g_flat[s:s + run], m_flat[s:s + run], v_flat[s:s + run]
                tt, dd = t[:gg.size], d[:gg.size]
                np.multiply(1 - b1, gg, out=tt)
                mm *= b1
                mm += tt
                np.multiply(1 - b2, gg, out=tt)
                tt *= gg
                vv *= b2
                vv += tt
                np.divide(mm, c1, out=tt)
                tt *= lr
                np.divide(vv, c2, out=dd)
                np.sqrt(dd, out=dd)
                dd += eps
                tt /= dd
                if direct:
                    p_flat[s:s + run] -= tt
                else:
                    p_flat[s:s + run] = tt
            if not direct:
                params[name] -= p_flat.reshape(m.shape)
