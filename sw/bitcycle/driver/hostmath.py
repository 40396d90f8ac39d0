"""The host (ARM core) half of a training step, in numpy: input quantisation, BatchNorm, softmax
cross-entropy, gradient quantisation with stochastic rounding, and Adam on latent weights.

The three matrix products are not here: they run on the engine (``Accelerator``). No torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bitcycle.errors import BitCycleError

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


def _amax(g: np.ndarray, keep_axis: int | None, block_axis: int | None, block: int):
    """max|g| for the whole tensor, per index of ``keep_axis``, or per index of ``keep_axis`` and
    run of ``block`` indices of ``block_axis`` (as ``bitcycle.quant.grad._amax``)."""
    a = np.abs(g)
    if keep_axis is None:
        return float(a.max()) if a.size else 0.0
    keep = {keep_axis % g.ndim}
    if block and block_axis is not None:
        bd = block_axis % g.ndim
        keep.add(bd)
    else:
        bd = None
    axes = tuple(d for d in range(g.ndim) if d not in keep)
    a = a.max(axis=axes, keepdims=True) if axes and a.size else a
    if bd is None:
        return a
    n = a.shape[bd]
    out = np.empty_like(a)
    for b0 in range(0, n, block):
        sl = [slice(None)] * a.ndim
        sl[bd] = slice(b0, b0 + block)
        out[tuple(sl)] = a[tuple(sl)].max(axis=bd, keepdims=True)
    return out


def quantize_grad(g: np.ndarray, bits: int, rng: np.random.Generator, keep_axis: int | None = None,
                  block_axis: int | None = None, block: int = 0) -> tuple[np.ndarray, float | np.ndarray]:
    """Symmetric quantisation of a float gradient to ``bits`` with stochastic rounding.

    Returns integer codes q (in [−(2^(b−1)−1), 2^(b−1)−1], or ±1 for b = 1) and the scale s with
    g ≈ s·q, unbiased: E[s·q] = g. The codes are what the engine consumes. ``keep_axis`` None: one
    scale for the tensor (a float); else one per index of that axis — and per run of ``block``
    indices of ``block_axis`` — as an array broadcastable against q (an all-zero slice gets scale
    0), as ``bitcycle.quant.grad`` does with ``keep_dim``/``block_dim``.
    """
    g = np.asarray(g, dtype=np.float64)
    amax = _amax(g, keep_axis, block_axis, block)
    if not np.all(np.isfinite(amax)):
        raise BitCycleError("gradient is not finite (NaN/inf): lower the learning rate")
    if keep_axis is None and amax == 0.0:
        return np.zeros(g.shape, dtype=np.int64) if bits > 1 else np.ones(g.shape, dtype=np.int64), 0.0
    u = rng.random(g.shape)
    zero = amax == 0
    safe = np.where(zero, 1.0, amax)
    if bits == 1:
        # ±1 with P(+1) = (1 + g/amax)/2: unbiased for scale amax
        return np.where(u < 0.5 * (1.0 + g / safe), 1, -1).astype(np.int64), amax
    qmax = (1 << (bits - 1)) - 1
    scale = safe / qmax
    q = np.floor(g / scale + u)
    return np.clip(q, -qmax, qmax).astype(np.int64), (np.where(zero, 0.0, scale) if keep_axis is not None else float(scale))


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
    gamma: np.ndarray = None
    beta: np.ndarray = None
    running_mean: np.ndarray = None
    running_var: np.ndarray = None

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
