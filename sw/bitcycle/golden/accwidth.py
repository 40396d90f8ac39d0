"""Minimal signed accumulator width of a binary × integer dot product that can never overflow.

A dot product of length K of a binary operand w ∈ {−1, +1} and an integer operand
x ∈ [x_lo, x_hi] lies in [K·p_min, K·p_max], where p_min/p_max are the extreme products over the
corners {±1}×{x_lo, x_hi} (the product is linear in each factor). For a b-bit two's-complement x
that is [−K·2^(b−1), K·2^(b−1)] — note +K·2^(b−1) (from (−1)·(−2^(b−1))), one more than the
positive range of x. For bipolar x (b = 1, the XNOR-popcount pass) it is [−K, K].

The width is the smallest W with −2^(W−1) ≤ lo and hi ≤ 2^(W−1) − 1. A clipping block that bounds
the integer operand to a narrower range (``x_range``) narrows the accumulator accordingly.

Numpy-free arithmetic on Python ints (exact for any K); runs on the board image.
"""

from __future__ import annotations

from bitcycle.golden.bitserial import check_bits, int_range


def signed_width(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi] (at least 1 bit)."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    width = 1
    while lo < -(1 << (width - 1)) or hi > (1 << (width - 1)) - 1:
        width += 1
    return width


def dot_range(k: int, x_range: tuple[int, int], w_range: tuple[int, int] = (-1, 1)) -> tuple[int, int]:
    """Exact [min, max] of Σ_{i<k} w_i·x_i with each w_i ∈ w_range corners and x_i ∈ x_range."""
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"dot-product length K must be a positive integer, got {k!r}")
    x_lo, x_hi = (int(v) for v in x_range)
    w_lo, w_hi = (int(v) for v in w_range)
    if x_lo > x_hi or w_lo > w_hi:
        raise ValueError(f"empty operand range x={x_range} w={w_range}")
    products = [w * x for w in (w_lo, w_hi) for x in (x_lo, x_hi)]
    return int(k) * min(products), int(k) * max(products)


def acc_bits_for_range(k: int, x_range: tuple[int, int]) -> int:
    """Minimal signed accumulator width of K terms w·x, w ∈ {−1, +1}, x ∈ ``x_range``: the one
    accumulator rule (:func:`min_acc_bits` for a ``bits``-wide operand, the FINN custom op's
    ``acc_bits_for`` for a FINN datatype's range)."""
    return signed_width(*dot_range(k, x_range))


def min_acc_bits(k: int, bits: int, x_range: tuple[int, int] | None = None) -> int:
    """Minimal signed accumulator width for ``bitserial_matmul(binary[M,K], ints[K,N], bits)``.

    ``x_range``: the integer operand's actual range where a clip bounds it (must lie within the
    ``bits`` range); default the full range of ``bits`` (bipolar ±1 for bits = 1).
    """
    bits = check_bits(bits)
    full = int_range(bits)
    if x_range is None:
        x_range = full
    elif not (full[0] <= x_range[0] <= x_range[1] <= full[1]):
        raise ValueError(f"x_range {tuple(x_range)} does not fit the {bits}-bit operand range {full}")
    return acc_bits_for_range(k, x_range)


def popcount_bits(k: int) -> int:
    """Width of an *unsigned* popcount of K bits, ⌈log2(K+1)⌉: what an XNOR-popcount unit counts
    (matches ∈ [0, K]) before the signed sum 2·matches − K is formed."""
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"K must be a positive integer, got {k!r}")
    return int(k).bit_length()


def training_acc_bits(k_forward: int, k_backward_data: int, k_backward_weight: int, input_bits: int,
                      grad_bits: int, input_range: tuple[int, int] | None = None) -> dict:
    """Accumulator widths of one binary layer's three engine passes (docs/engine.md's table):

    forward y = W·x (K = fan-in, x at ``input_bits``: 1 after a sign, 8 for the first layer or after
    a clipping block, ``input_range`` where a clip narrows it), backward-data dx = Wᵀ·dy (K = fan-out),
    backward-weight dW = dy·sign(x)ᵀ (K = batch × output positions), dy at ``grad_bits``.
    """
    return {
        "forward": min_acc_bits(k_forward, input_bits, input_range),
        "backward_data": min_acc_bits(k_backward_data, grad_bits),
        "backward_weight": min_acc_bits(k_backward_weight, grad_bits),
    }
