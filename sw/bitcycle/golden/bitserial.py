"""Bit-serial binary × integer matrix product, computed the way the BitCycle MAC array does.

The array holds one binary operand (±1, stored as one bit: 1 ↦ +1, 0 ↦ −1) and walks the
bit-planes of the integer operand, one plane per cycle. For plane p (a 0/1 matrix):

    Σ_k w_k · x_{k,p} = popcount(w⁺ ∧ x_p) − popcount(w⁻ ∧ x_p) = 2·popcount(w⁺ ∧ x_p) − popcount(x_p)

and the plane's partial sum is shifted left by p and added — subtracted for the MSB plane
(two's complement weight −2^(b−1)). With ``bits == 1`` the integer operand is bipolar ±1 too,
stored as one plane with 0 ↦ −1, and the plane sum is the XNOR-popcount 2·popcount(w ⊙ x) − K.
"""

from __future__ import annotations

import numpy as np

MIN_BITS = 1
MAX_BITS = 16


def int_range(bits: int) -> tuple[int, int]:
    """Inclusive range of the integer operand at ``bits`` (bipolar {−1, +1} for bits = 1)."""
    check_bits(bits)
    if bits == 1:
        return -1, 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def signed_range(width: int) -> tuple[int, int]:
    """Inclusive range of a signed two's-complement register of ``width`` bits."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def check_bits(bits, name: str = "bits", lo: int = MIN_BITS, hi: int = MAX_BITS) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {bits!r}")
    return int(bits)


def check_binary(binary, name: str = "binary", ndim: int = 2) -> np.ndarray:
    """Validate a ±1 operand; returns it as int8."""
    arr = np.asarray(binary)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array of ±1, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer (int8) array of ±1, got dtype {arr.dtype}")
    if arr.size and not np.all((arr == 1) | (arr == -1)):
        bad = arr[(arr != 1) & (arr != -1)].flat[0]
        raise ValueError(f"{name} must hold only -1/+1 (binary operand), found {bad}")
    return arr.astype(np.int8, copy=False)


def check_ints(ints, bits: int, name: str = "ints", ndim: int = 2) -> np.ndarray:
    """Validate an integer operand that must fit in ``bits``; returns it as int64."""
    arr = np.asarray(ints)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D integer array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if bits == 1:
        if arr.size and not np.all((arr == 1) | (arr == -1)):
            raise ValueError(f"{name} must be bipolar ±1 when bits=1, found {arr[(arr != 1) & (arr != -1)].flat[0]}")
    elif arr.size:
        lo, hi = int_range(bits)
        if arr.min() < lo or arr.max() > hi:
            raise ValueError(
                f"{name} holds values in [{arr.min()}, {arr.max()}] that do not fit in bits={bits} "
                f"(range [{lo}, {hi}]); raise bits or quantise {name} first"
            )
    return arr


def bit_planes(ints: np.ndarray, bits: int) -> np.ndarray:
    """The 0/1 bit-planes of ``ints`` as the array streams them: shape [bits, *ints.shape], LSB first.

    For bits = 1 the single plane is the bipolar code (+1 ↦ 1, −1 ↦ 0).
    """
    if bits == 1:
        return (ints > 0).astype(np.uint8)[None]
    unsigned = ints.astype(np.int64) & ((1 << bits) - 1)  # two's-complement code
    return np.stack([(unsigned >> p) & 1 for p in range(bits)]).astype(np.uint8)


def plane_weight(p: int, bits: int) -> int:
    """Signed weight of plane p: 2^p, or −2^(b−1) for the MSB of a two's-complement operand."""
    if bits == 1:
        return 1
    return -(1 << p) if p == bits - 1 else (1 << p)


def saturate(values: np.ndarray, acc_bits: int | None) -> np.ndarray:
    """Clamp to the signed ``acc_bits`` range (the output saturation of the array)."""
    if acc_bits is None:
        return values
    lo, hi = signed_range(check_bits(acc_bits, "acc_bits", 2, 64))
    return np.clip(values, lo, hi)


def bitserial_matmul(binary, ints, bits: int, acc_bits: int | None = None) -> np.ndarray:
    """Exact ``binary @ ints`` computed plane by plane; int64 [M, N].

    binary: ±1 integer array [M, K]; ints: integer array [K, N] that fits in ``bits``
    (two's complement for bits ≥ 2, bipolar ±1 for bits = 1); with ``acc_bits`` the exact sum
    is saturated to the signed ``acc_bits`` range at the output.
    """
    bits = check_bits(bits)
    w = check_binary(binary)
    x = check_ints(ints, bits)
    if w.shape[1] != x.shape[0]:
        raise ValueError(f"binary is [M,K]={list(w.shape)} but ints is [K,N]={list(x.shape)}: K must match")
    w_pos = (w > 0).astype(np.int64)  # the stored weight bit
    k = w.shape[1]
    acc = np.zeros((w.shape[0], x.shape[1]), dtype=np.int64)
    for p, plane in enumerate(bit_planes(x, bits)):
        plane = plane.astype(np.int64)
        # popcount over K of (w⁺ AND x_p) for every (m, n): a 0/1 matrix product is exactly that.
        pop_and = w_pos @ plane
        if bits == 1:
            # XNOR-popcount: matches = popcount(w⁺∧x) + popcount(w⁻∧¬x)
            matches = pop_and + (1 - w_pos) @ (1 - plane)
            acc += 2 * matches - k
        else:
            pop_x = plane.sum(axis=0, keepdims=True)
            acc += plane_weight(p, bits) * (2 * pop_and - pop_x)
    return saturate(acc, acc_bits)
