"""Job planning: how the driver cuts a product into engine jobs that fit the engine's memories and
accumulator, and when it can stream a layer's weights instead of loading them.

Pure functions of driver.json's engine section (no registers, no streams). Every plan keeps each
product exact: the jobs' integer results are summed or stacked by the caller.
"""

from __future__ import annotations

import functools

import numpy as np

from bitcycle.errors import BitCycleError
from bitcycle.golden import stream as S
from bitcycle.golden.accwidth import min_acc_bits, signed_width


def max_chunks(engine, bits: int, chunk: int) -> int:
    """Chunks per reduction so the engine's worst case len·2^(bits−1) fits ACC_BITS (else ERROR.OVERFLOW)."""
    max_len = ((1 << (engine.acc_bits - 1)) - 1) >> (bits - 1 if bits > 1 else 0)
    if max_len < chunk:
        raise BitCycleError(f"the engine's ACC_BITS={engine.acc_bits} cannot hold even one {chunk}-lane chunk at "
                            f"bits={bits}; use fewer bits or an overlay with wider accumulators")
    return min(engine.max_chunks, max_len // chunk)


@functools.lru_cache(maxsize=256)
def result_widths(bits: int, red_len: int) -> tuple[int, int]:
    """(ACC_BITS, bits per result) of a RAW job reducing ``red_len`` products of a ``bits``-wide
    integer by ±1: the accumulator rule's width (golden.accwidth), so saturation never changes a
    value, and the narrowest stream field (8, 16, 32) holding it, so the engine packs
    DATA_W/width results per beat and no field truncates (the engine refuses a narrower one)."""
    acc_bits = min_acc_bits(red_len, bits)
    return acc_bits, S.result_bits(S.OUT_RAW, acc_bits)


def weight_blocks(engine, m: int, k: int, col_bits: int, row_bits: int,
                  row_block: int = 0) -> list[tuple[int, int, int, int]]:
    """W[M, K] cut into blocks (r0, r1, c0, c1) that fit the weight memory, the per-vector chunk
    limit and the accumulator (FORWARD reduces over the columns at ``col_bits``, BACKWARD_DATA over
    the rows at ``row_bits``); one block structure per layer, so a block stays resident across
    modes. ``row_block``: row blocks divide it (and start at its multiples) — float block scales
    of dy, which a BACKWARD_DATA job must not mix."""
    gk = min(-(-k // engine.simd), max_chunks(engine, col_bits, engine.simd), engine.weight_words)
    gm = min(-(-m // engine.pe), max_chunks(engine, row_bits, engine.pe), max(engine.weight_words // gk, 1))
    rb, cb = gm * engine.pe, gk * engine.simd
    if row_block:
        rb = max(d for d in range(1, min(rb, row_block) + 1) if row_block % d == 0)
    return [(r0, min(r0 + rb, m), c0, min(c0 + cb, k)) for r0 in range(0, m, rb) for c0 in range(0, k, cb)]


def streamed_tiling(engine, k: int, n: int, bits: int) -> tuple[int, int]:
    """(rows, columns) per BACKWARD_WEIGHT job of a streamed binary operand B[K, N] (its tiles go to
    the activation memory; the reduction over N is cut to fit the chunk limit and the accumulator)."""
    gn = min(-(-n // engine.simd), max_chunks(engine, bits, engine.simd), engine.act_tiles)
    return engine.pe * max(engine.act_tiles // gn, 1), gn * engine.simd


def streamed_jobs(engine, k: int, n: int, bits: int) -> int:
    """BACKWARD_WEIGHT jobs for a product with the streamed binary operand B[K, N]."""
    kb, nb = streamed_tiling(engine, k, n, bits)
    return -(-k // kb) * -(-n // nb)


def int_bits(values: np.ndarray) -> int:
    """The fewest engine bits that hold these integers: 1 if all are ±1 (bipolar code), else two's complement."""
    v = np.asarray(values)
    if v.size == 0:
        return 1
    peak = max(int(v.max()), -int(v.min()))  # = max |v|, without an |v| array
    if peak == 1 and np.count_nonzero(v) == v.size:  # every value ±1
        return 1
    return max(2, signed_width(-peak, peak))


def fold_scales(q: np.ndarray, scales: np.ndarray, reduce_axis: int, max_bits: int):
    """One job instead of one per block: codes q [R, C] with block scales s (broadcastable), summed
    along ``reduce_axis``. If every scale of a row (the other axis) is an integer multiple of the
    row's smallest non-zero one s_min — as the pow2 quantiser's powers of two are — then
    Σ s·q = s_min · Σ (s/s_min)·q exactly, with integers q' = (s/s_min)·q.

    Returns (q', bits of q', s_min broadcastable along the kept axis) or None when the ratios are
    not integers or q' needs more than ``max_bits``."""
    q = np.asarray(q, dtype=np.int64)
    s = np.broadcast_to(np.asarray(scales, dtype=np.float64), q.shape)
    nonzero = s > 0
    s_min = np.where(nonzero, s, np.inf).min(axis=reduce_axis, keepdims=True)
    s_min = np.where(np.isfinite(s_min), s_min, 0.0)
    ratio = np.where(nonzero, s / np.where(s_min > 0, s_min, 1.0), 0.0)
    if not np.all(ratio == np.rint(ratio)) or ratio.max(initial=0.0) > 1 << max_bits:
        return None
    folded = q * ratio.astype(np.int64)
    bits = int_bits(folded)
    return (folded, bits, s_min) if bits <= max_bits else None
