"""The host (ARM core) half of a training step, in numpy: input quantisation, BatchNorm, softmax
cross-entropy, gradient quantisation with (counter-based) stochastic rounding, and Adam on latent weights.

The three matrix products are not here: they run on the engine (``Accelerator``). No torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bitcycle.errors import BitCycleError
from bitcycle.golden import stochastic

BN_EPS = 1e-4  # as the torch zoo (bitcycle.nets)
BN_MOMENTUM = 0.1


def sign_pm1(a: np.ndarray) -> np.ndarray:
    """sign with sign(0) = +1 (the stored weight bit is 1 for w >= 0), as int8 ±1."""
    return np.where(np.asarray(a) >= 0, 1, -1).astype(np.int8)


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


def _blocks(g: np.ndarray, keep: int | None, block_axis: int | None, block: int):
    """g laid out as G = [K, O, NB, B] (one scale per G[k, :, nb, :]) and the inverse map, as
    ``bitcycle.quant.grad._Blocks``: the element order there is the order of the uniforms."""
    shape = g.shape
    if keep is None:
        return g.reshape(1, 1, 1, -1), lambda G: G.reshape(shape)
    keep = keep % g.ndim
    t = np.moveaxis(g, keep, 0)
    if block and block_axis is not None and block < shape[block_axis % g.ndim]:
        bd = block_axis % g.ndim
        if bd == keep:
            raise BitCycleError("gradient blocks must run along another axis than the one kept")
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
    g64 = np.asarray(g, dtype=np.float64)
    G64, unblock = _blocks(g64, keep_axis, block_axis, block)
    amax = np.abs(G64).max(axis=(1, 3), keepdims=True) if G64.size else np.zeros((1, 1, 1, 1))
    if not np.all(np.isfinite(amax)):
        raise BitCycleError("gradient is not finite (NaN/inf): lower the learning rate")
    key = _key(rng)
    rows = keep_axis is not None
    if not rows and amax.max() == 0.0:
        return np.zeros(g64.shape, dtype=np.int64) if bits > 1 else np.ones(g64.shape, dtype=np.int64), 0.0
    G = G64.astype(np.float32)
    u = counter_uniform(G.shape, key)
    zero = amax == 0
    safe = np.where(zero, 1.0, amax)
    if pow2 and rows:  # block floating point: power-of-two scales (exact divisions in float32)
        qmax = 1 if bits == 1 else (1 << (bits - 1)) - 1
        amax32 = np.abs(G).max(axis=(1, 3), keepdims=True)  # torch's block maxima are float32 too
        scale = pow2_block_scales(amax32, qmax)
        s32 = np.where(amax32 == 0, 1.0, scale).astype(np.float32)
        if bits == 1:
            q = np.where(u * np.float32(2.0) - np.float32(1.0) < G / s32, 1, -1)
        else:
            q = np.clip(np.floor(G / s32 + u), -qmax, qmax)
    elif bits == 1:
        # ±1 with P(+1) = (1 + g/amax)/2: unbiased for scale amax
        q = np.where(u * np.float32(2.0) - np.float32(1.0) < G / safe.astype(np.float32), 1, -1)
        scale = amax
    else:
        qmax = (1 << (bits - 1)) - 1
        q = np.clip(np.floor(G / (safe.astype(np.float32) / np.float32(qmax)) + u), -qmax, qmax)
        scale = np.where(zero, 0.0, safe / qmax)
    q = np.ascontiguousarray(unblock(q)).astype(np.int64)
    if keep_axis is None:
        return q, float(scale.reshape(()))
    blocked = bool(block) and block_axis is not None and block < g64.shape[block_axis % g64.ndim]
    return q, _scale_like(unblock, scale, g64.shape, keep_axis % g64.ndim, blocked)


def _scale_like(unblock, scale: np.ndarray, shape, keep: int, blocked: bool) -> np.ndarray:
    """Row scales as an array broadcastable against q: 1 along every axis but ``keep`` (no blocks), else q's shape."""
    if blocked:
        return np.ascontiguousarray(unblock(scale))
    out = [1] * len(shape)
    out[keep] = shape[keep]
    return scale.reshape(out)


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
        xhat = (z - mu[:, None]) * inv[:, None]
        return self.gamma[:, None] * xhat + self.beta[:, None], (xhat, inv)

    def backward(self, dy: np.ndarray, cache):
        xhat, inv = cache
        n = dy.shape[1]
        dgamma = (dy * xhat).sum(axis=1)
        dbeta = dy.sum(axis=1)
        dxhat = dy * self.gamma[:, None]
        dz = inv[:, None] / n * (n * dxhat - dxhat.sum(axis=1, keepdims=True) - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))
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
        """In-place update of every array in ``params`` that has a gradient."""
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        for name, g in grads.items():
            m, v = self.state.get(name, (np.zeros_like(g), np.zeros_like(g)))
            m = self.beta1 * m + (1 - self.beta1) * g
            v = self.beta2 * v + (1 - self.beta2) * g * g
            self.state[name] = (m, v)
            params[name] -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)
