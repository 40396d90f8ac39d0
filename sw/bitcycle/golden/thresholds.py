"""BatchNorm followed by sign, folded into one integer threshold per channel.

A binary layer's accumulator a is an integer (times a known ``step`` for the first layer's 8-bit
input grid). Inference BatchNorm then sign gives

    out = +1  ⇔  γ·(step·a − μ)/σ + β ≥ 0,     σ = √(var + ε),   sign(0) = +1,

and with t = (μ − β·σ/γ)/step:

    γ > 0:  out = +1 ⇔ a ≥ t ⇔ a ≥ ⌈t⌉                 →  direction +1, threshold ⌈t⌉
    γ < 0:  out = +1 ⇔ a ≤ t ⇔ −a ≥ −⌊t⌋  (sign flip)  →  direction −1, threshold −⌊t⌋
    γ = 0:  out = sign(β) for every a                  →  threshold ALWAYS (β ≥ 0) or NEVER

so the hardware compares ``direction·a ≥ threshold`` — an integer compare per channel, no BN
arithmetic. ⌈t⌉/⌊t⌋ are taken in float64 with a guard that re-checks the two neighbouring
integers against the float64 BN, so rounding in t never moves a threshold.

Numpy only; runs on the board image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Sentinels for γ = 0 channels: below / above any accumulator value (|a| < 2^62 always).
ALWAYS = -(1 << 62)
NEVER = 1 << 62
FAR = 1 << 40  # no accumulator reaches this; thresholds beyond it mean "constant output"


@dataclass(frozen=True)
class Thresholds:
    """Per-channel integer compare: out = +1 where direction·acc ≥ threshold, else −1."""

    threshold: np.ndarray  # int64 [C]
    direction: np.ndarray  # int8  [C], +1 or −1 (−1: γ < 0, the sign flip)

    def apply(self, acc, channel_axis: int = 1) -> np.ndarray:
        return apply_thresholds(acc, self, channel_axis)

    def ge_form(self) -> tuple[np.ndarray, np.ndarray]:
        """(thr, invert) for a unit that only tests ``acc ≥ thr`` (the engine's THRESHOLD stage):
        out = +1 ⇔ (acc ≥ thr) XOR invert. For γ < 0: −acc ≥ T ⇔ ¬(acc ≥ 1 − T), so thr = 1 − T
        and the host (or FINN's way: negating that weight row) inverts the bit."""
        invert = self.direction < 0
        return np.where(invert, 1 - self.threshold, self.threshold).astype(np.int64), invert

    def clipped(self, acc_lo: int, acc_hi: int) -> "Thresholds":
        """The same function on accumulators in [acc_lo, acc_hi], thresholds clamped to that range
        (± one step beyond it for always/never): what a register of the accumulator's width holds."""
        lo = np.where(self.direction > 0, acc_lo, -acc_hi)
        hi = np.where(self.direction > 0, acc_hi, -acc_lo) + 1
        return Thresholds(np.clip(self.threshold, lo, hi).astype(np.int64), self.direction)


def _bn(a, mean, sigma, gamma, beta, step):
    return gamma * (step * a - mean) / sigma + beta


def bn_sign_thresholds(mean, var, gamma, beta, eps: float, step: float = 1.0) -> Thresholds:
    """Fold inference BatchNorm (running ``mean``/``var``, affine ``gamma``/``beta``, ``eps``) and
    sign into per-channel integer thresholds on the accumulator (see the module docstring)."""
    mean, var, gamma, beta = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (mean, var, gamma, beta))
    if not (mean.shape == var.shape == gamma.shape == beta.shape):
        raise ValueError(f"BN parameters differ in length: mean {mean.shape}, var {var.shape}, gamma {gamma.shape}, beta {beta.shape}")
    if np.any(var + eps <= 0) or not step > 0:
        raise ValueError("BN variance + eps and step must be positive")
    sigma = np.sqrt(var + eps)
    c = mean.size
    threshold = np.empty(c, dtype=np.int64)
    direction = np.ones(c, dtype=np.int8)
    for i in range(c):
        g, b = gamma[i], beta[i]
        if g == 0:
            threshold[i] = ALWAYS if b >= 0 else NEVER
            continue
        t = (mean[i] - b * sigma[i] / g) / step
        if np.isnan(t):
            raise ValueError(f"BN channel {i} has NaN parameters")
        if abs(t) >= FAR:  # beyond any accumulator: the channel is constant
            threshold[i] = ALWAYS if (t < 0) == (g > 0) else NEVER
            if g < 0:
                direction[i] = -1
            continue
        if g > 0:
            a = int(np.ceil(t))
            # guard: the least integer a with BN(a) ≥ 0, checked on the float64 BN itself
            while _bn(a - 1, mean[i], sigma[i], g, b, step) >= 0:
                a -= 1
            while _bn(a, mean[i], sigma[i], g, b, step) < 0:
                a += 1
            threshold[i] = a
        else:
            a = int(np.floor(t))  # the greatest integer a with BN(a) ≥ 0
            while _bn(a + 1, mean[i], sigma[i], g, b, step) >= 0:
                a += 1
            while _bn(a, mean[i], sigma[i], g, b, step) < 0:
                a -= 1
            threshold[i] = -a
            direction[i] = -1
    return Thresholds(threshold, direction)


def apply_thresholds(acc, thresholds: Thresholds, channel_axis: int = 1) -> np.ndarray:
    """±1 (int8) outputs of the threshold unit for integer accumulators ``acc`` ([N, C] or [N, C, H, W])."""
    acc = np.asarray(acc)
    if not np.issubdtype(acc.dtype, np.integer):
        raise ValueError(f"accumulators must be integers, got dtype {acc.dtype}")
    c = thresholds.threshold.size
    if acc.shape[channel_axis] != c:
        raise ValueError(f"acc has {acc.shape[channel_axis]} channels on axis {channel_axis} but there are {c} thresholds")
    shape = [1] * acc.ndim
    shape[channel_axis] = c
    d = thresholds.direction.astype(np.int64).reshape(shape)
    t = thresholds.threshold.reshape(shape)
    return np.where(d * acc.astype(np.int64) >= t, 1, -1).astype(np.int8)


def clip_shift8(acc, shift: int) -> np.ndarray:
    """The clipping block's hardware: floor(acc / 2^shift) (an arithmetic right shift; a left shift
    for shift < 0), saturated to int8 codes. Equals ``bitcycle.quant.clip.ClipBlock`` output / scale
    for integer ``acc``, and the engine's CLIP8 output stage for shift ≥ 0.
    """
    acc = np.asarray(acc)
    if not np.issubdtype(acc.dtype, np.integer):
        raise ValueError(f"accumulators must be integers, got dtype {acc.dtype}")
    acc = acc.astype(np.int64)
    q = acc << -shift if shift <= 0 else acc >> shift
    return np.clip(q, -128, 127).astype(np.int8)
