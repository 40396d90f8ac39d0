"""The gradient quantiser's shared arithmetic, in numpy: the stochastic-rounding table and the
power-of-two block scales. ``bitcycle.quant.grad`` (torch, training) and
``bitcycle.driver.hostmath`` (numpy, the board) both take them from here, so the two quantisers
produce the same codes and scales by construction, not by keeping two copies in step.

Table: T holds the L = 2^20 grid points (j + ½)/L in the order of lowbias32(j) (a bijection of
uint32), doubled as [T, T] so a window of up to L values is a slice. Element i of a call with key
k takes u = T[(i mod L + off_c) mod L], off_c = (k + c·0x9E3779B1) mod L, c = i // L.

pow2 scales: 2^e with e the least integer such that 2^e·qmax ≥ amax of the block, raised to at
least the row's largest e − POW2_SPAN (a shared exponent per row and a 2-bit micro-exponent per
block); 0 for an all-zero block.
"""

from __future__ import annotations

import numpy as np

UNIFORM_BITS = 20
L = 1 << UNIFORM_BITS
CHUNK_STRIDE = 0x9E3779B1
POW2_SPAN = 3
_TABLE: np.ndarray | None = None


def hash32(x: np.ndarray) -> np.ndarray:
    """lowbias32 of uint32 values (a bijection)."""
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def uniform_table() -> np.ndarray:
    """The doubled table [T, T], float32 (2L values), built once and shared (do not write to it)."""
    global _TABLE
    if _TABLE is None:
        perm = np.argsort(hash32(np.arange(L, dtype=np.uint32)), kind="stable")
        t = ((perm.astype(np.float32) + np.float32(0.5)) / np.float32(L)).astype(np.float32)
        _TABLE = np.concatenate([t, t])
        _TABLE.setflags(write=False)
    return _TABLE


def window_starts(n: int, key: int) -> list[tuple[int, int]]:
    """(start, length) in the doubled table of each chunk of L values for n elements and ``key``."""
    return [((key + c * CHUNK_STRIDE) % L, min(L, n - c * L)) for c in range((n + L - 1) // L)]


def counter_uniform(shape, key: int) -> np.ndarray:
    """u for row-major element i of ``shape`` and ``key``."""
    n, t = int(np.prod(shape)), uniform_table()
    parts = [t[s:s + m] for s, m in window_starts(n, key)]
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)).reshape(shape)


def _exp2(e: np.ndarray) -> np.ndarray:
    """2^e (float64) for int64 e: ``np.ldexp(1.0, e)``, built from the exponent bits where every e
    is a normal float64's (numpy's ldexp with an int64 exponent runs one libm call per value)."""
    if e.size and -1022 <= e.min() and e.max() <= 1023:
        return ((e + 1023) << 52).view(np.float64)
    return np.ldexp(1.0, e)


def _least_exponents(amax: np.ndarray, qmax: float) -> tuple[np.ndarray, np.ndarray]:
    """(e, zero): for each a = amax > 0 the least integer e with 2^e·qmax ≥ a (int64; 0 where a = 0).

    float32 maxima (both quantisers' blocks) from their bit fields: with a = m_a·2^E_a and
    qmax = m_q·2^E_q (m ∈ [1, 2)), m_a/m_q ∈ (½, 2) so e = E_a − E_q + [m_a > m_q], exact. Other
    inputs (or subnormal, infinite, negative values): from a/qmax's frexp exponent, corrected by
    exact comparisons — the same e."""
    a = np.asarray(amax)
    zero = a == 0
    if a.dtype == np.float32 and 1 <= qmax < 1 << 24 and float(np.float32(qmax)) == qmax:
        bits = a.view(np.int32)
        # +0 or a positive normal float32: bits − 2^23 (wrapped) ≤ 0x7EFFFFFF
        if np.all(zero | (bits.view(np.uint32) - np.uint32(0x00800000) <= np.uint32(0x7EFFFFFF))):
            q_bits = int(np.float32(qmax).view(np.int32))
            e = (bits >> 23).astype(np.int64)
            e -= q_bits >> 23
            e += (bits & 0x7FFFFF) > (q_bits & 0x7FFFFF)
            e[zero] = 0
            return e, zero
    a = np.array(a, dtype=np.float64)  # a copy: the zero blocks are set to 1 in it
    a[zero] = 1.0
    r = a / qmax
    if np.all(np.isfinite(r)) and r.size and r.min() >= np.finfo(np.float64).tiny:
        e = ((r.view(np.int64) >> 52) & 0x7FF) - 1022  # frexp's exponent of a normal float64
    else:
        e = np.frexp(r)[1].astype(np.int64)
    # a/qmax ≤ 2^e; the division may round: fix below (products of powers of two and qmax are exact)
    e -= _exp2(e - 1) * qmax >= a
    e += _exp2(e) * qmax < a
    e[zero] = 0
    return e, zero


def pow2_block_scales(amax: np.ndarray, qmax: float) -> np.ndarray:
    """pow2 scales (float64) of [K, 1, NB, 1] block maxima; the row is axis 2's blocks."""
    e, zero = _least_exponents(amax, qmax)
    masked = e.copy()
    masked[zero] = np.iinfo(np.int32).min
    k, o, nb, b = masked.shape
    # the row's largest exponent: max over axis 2, across whole rows of a transposed copy (numpy
    # reduces a short inner axis value by value)
    row_max = masked.transpose(2, 0, 1, 3).reshape(nb, -1).max(axis=0).reshape(k, o, 1, b)
    np.maximum(e, row_max - POW2_SPAN, out=e)
    e[zero] = 0
    scale = _exp2(e)
    scale[zero] = 0.0
    return scale
