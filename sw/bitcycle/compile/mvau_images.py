"""The memory images of one generated BitSerialMVAU_rtl layer, as hw/rtl's ``bitcycle_mvau``
reads them with ``$readmemh`` (its W_FILE / T_FILE parameters), one hex word per line:

* ``<top>_weights.mem``: MH/PE · MW/SIMD lines of PE·SIMD bits, FINN's folding order (neuron fold
  outer, synapse fold inner); bit i·SIMD + j = weight of row nf·PE + i, column sf·SIMD + j (1 = +1).
  A layer with weights of its top L lanes in LUT logic (WROM_LUT_PE = L) has two: the lanes below
  PE − L here, the top L in ``<top>_weights_lut.mem`` (bit i·SIMD + j: lane PE − L + i).
* ``<top>_thresholds.mem``: MH/PE lines of PE·NTHR·(ACC_BITS+1) bits; field (i·NTHR + k) = the
  k-th threshold of row nf·PE + i, two's complement, clamped to [−2^(A−1), 2^(A−1)] (beyond the
  saturated sum's range a threshold is "always" or "never"). A layer built with THR_INIT
  (:func:`thr_init_applies`) holds −(T + MW) there instead: its accumulator's start value.
"""

from __future__ import annotations

import numpy as np

from bitcycle.errors import BitCycleError
from bitcycle.golden.accwidth import min_acc_bits


def weight_mem_text(w: np.ndarray, pe: int, simd: int, lanes: range | None = None) -> str:
    """W [MW, MH] (±1, or 0/1 codes) → the weight image (see the module docstring) of the PE lanes
    ``lanes`` (all by default; bitcycle_mvau keeps its block-RAM and its LUT lanes in two images)."""
    bits = (np.asarray(w) > 0).astype(np.uint8).T  # [MH, MW]
    mh, mw = bits.shape
    if mh % pe or mw % simd:
        raise BitCycleError(f"weights {mh}x{mw} do not fold by PE={pe}, SIMD={simd}")
    lanes = range(pe) if lanes is None else lanes
    width = len(lanes) * simd
    tiles = bits.reshape(mh // pe, pe, mw // simd, simd)[:, lanes.start:lanes.stop]
    tiles = tiles.transpose(0, 2, 1, 3).reshape(-1, width)
    weights = 1 << np.arange(width, dtype=object)
    lines = [f"{int(np.dot(t.astype(object), weights)):0{(width + 3) // 4}x}" for t in tiles]
    return "\n".join(lines) + "\n"


def threshold_rows(thr: np.ndarray, mh: int, acc_bits: int) -> np.ndarray:
    """Thresholds [MH or 1, NTHR] → integers [MH, NTHR] clamped to the saturated sum's range + 1."""
    t = np.asarray(thr, dtype=np.float64)
    if t.ndim == 1:
        t = t.reshape(-1, 1)
    if t.shape[0] == 1 and mh > 1:
        t = np.repeat(t, mh, axis=0)
    t = np.ceil(t)  # s ≥ T ⇔ s ≥ ⌈T⌉ for integer s
    lo, hi = -(1 << (acc_bits - 1)), 1 << (acc_bits - 1)
    return np.clip(t, lo, hi).astype(np.int64)


def threshold_mem_text(thr: np.ndarray, pe: int, acc_bits: int) -> str:
    """Integer thresholds [MH, NTHR] (threshold_rows) → the threshold image."""
    t = np.asarray(thr, dtype=np.int64)
    mh, n = t.shape
    tw = acc_bits + 1
    mask = (1 << tw) - 1
    width = pe * n * tw
    lines = []
    for nf in range(mh // pe):
        word = 0
        for i in range(pe):
            for k in range(n):
                word |= (int(t[nf * pe + i, k]) & mask) << ((i * n + k) * tw)
        lines.append(f"{word:0{(width + 3) // 4}x}")
    return "\n".join(lines) + "\n"


def thr_init_applies(bits: int, n_thr: int, mw: int, acc_bits: int) -> bool:
    """bitcycle_mvau's THR_INIT: a 1-bit layer with one threshold per channel whose ACC_BITS hold ±MW
    (no saturation) starts its accumulator at −(T + MW) instead of comparing with T at the end."""
    return bits == 1 and n_thr == 1 and acc_bits >= min_acc_bits(mw, 1)


def start_values(thr: np.ndarray, mw: int) -> np.ndarray:
    """Clamped integer thresholds [MH, 1] (threshold_rows) → THR_INIT's start values −(T + MW)."""
    return -(np.asarray(thr, dtype=np.int64) + mw)
