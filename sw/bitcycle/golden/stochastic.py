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


def pow2_block_scales(amax: np.ndarray, qmax: float) -> np.ndarray:
    """pow2 scales (float64) of [K, 1, NB, 1] block maxima; the row is axis 2's blocks."""
    a = np.asarray(amax, dtype=np.float64)
    zero = a == 0
    a1 = np.where(zero, 1.0, a)
    e = np.frexp(a1 / qmax)[1].astype(np.int64)  # a/qmax ≤ 2^e; the division may round: fix below
    e = np.where(np.ldexp(1.0, e - 1) * qmax >= a1, e - 1, e)  # products of powers of two and qmax are exact
    e = np.where(np.ldexp(1.0, e) * qmax < a1, e + 1, e)
    row_max = np.where(zero, np.iinfo(np.int32).min, e).max(axis=2, keepdims=True)
    e = np.maximum(e, row_max - POW2_SPAN)
    return np.where(zero, 0.0, np.ldexp(1.0, np.where(zero, 0, e)))
