"""Minimal accumulator width: the worst cases fit in W bits, and W−1 bits overflow on one of them."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitcycle.golden import bitserial_matmul, int_range
from bitcycle.golden.accwidth import dot_range, min_acc_bits, popcount_bits, signed_width


def _worst_cases(k, bits, x_range=None):
    """The two extreme dot products of length k: all products at their max, all at their min."""
    lo, hi = x_range or int_range(bits)
    corners = [(w, x) for w in (-1, 1) for x in (lo, hi)]
    w_max, x_max = max(corners, key=lambda c: c[0] * c[1])
    w_min, x_min = min(corners, key=lambda c: c[0] * c[1])
    binary = np.array([[w_max] * k, [w_min] * k], dtype=np.int8)
    ints = np.array([[x_max, x_min]] * k, dtype=np.int64)  # column 0 pairs with row 0 → max
    return binary, ints


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 16), st.integers(0, 2**31 - 1))
def test_random_and_worst_cases_fit_and_one_bit_less_overflows(k, bits, seed):
    width = min_acc_bits(k, bits)
    binary, ints = _worst_cases(k, bits)
    exact = binary.astype(np.int64) @ ints
    assert np.array_equal(bitserial_matmul(binary, ints, bits, acc_bits=width), exact)
    if width > 2:
        assert not np.array_equal(bitserial_matmul(binary, ints, bits, acc_bits=width - 1), exact)
    rng = np.random.default_rng(seed)
    lo, hi = int_range(bits)
    rb = rng.choice(np.array([-1, 1], dtype=np.int8), size=(3, k))
    ri = rng.choice([lo, hi], size=(k, 4)) if bits == 1 else rng.integers(lo, hi + 1, size=(k, 4))
    assert np.array_equal(bitserial_matmul(rb, ri, bits, acc_bits=width), rb.astype(np.int64) @ ri)


def test_known_widths():
    # XNOR pass: K=784 → sums in [−784, 784] → 11 bits
    assert min_acc_bits(784, 1) == 11
    # 8-bit operand: K·128 is reached by (−1)·(−128): 784·128 = 100352 → 18 bits
    assert min_acc_bits(784, 8) == 18
    assert dot_range(3, (-128, 127)) == (-384, 384)
    assert signed_width(-128, 127) == 8 and signed_width(-128, 128) == 9 and signed_width(0, 0) == 1
    assert popcount_bits(784) == 10 and popcount_bits(1) == 1 and popcount_bits(255) == 8


def test_clip_narrows_the_accumulator():
    # a clip to [−64, 63] of an 8-bit operand saves one accumulator bit
    assert min_acc_bits(1152, 8, x_range=(-64, 63)) == min_acc_bits(1152, 8) - 1
    binary, ints = _worst_cases(1152, 8, (-64, 63))
    w = min_acc_bits(1152, 8, x_range=(-64, 63))
    assert np.array_equal(bitserial_matmul(binary, ints, 8, acc_bits=w), binary.astype(np.int64) @ ints)
    assert not np.array_equal(bitserial_matmul(binary, ints, 8, acc_bits=w - 1), binary.astype(np.int64) @ ints)


def test_bad_input():
    with pytest.raises(ValueError, match="positive integer"):
        min_acc_bits(0, 8)
    with pytest.raises(ValueError, match="does not fit"):
        min_acc_bits(4, 8, x_range=(-200, 10))
    with pytest.raises(ValueError, match="bits"):
        min_acc_bits(4, 0)


def test_training_acc_bits_of_a_layer():
    # SFC layer 2: K=256 fan-in (±1), 256 fan-out, batch 100; dy at 8 bits
    got = __import__("bitcycle.golden.accwidth", fromlist=["x"]).training_acc_bits(256, 256, 100, 1, 8)
    assert got == {"forward": 10, "backward_data": 17, "backward_weight": 15}
    # 100·128 = 12800 ≤ 2^14 − 1 = 16383 → 15 bits; 256·128 = 32768 > 2^15 − 1 → 17 bits


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000), st.integers(-(2**15), 2**15), st.integers(0, 2**16))
def test_acc_bits_for_range_is_the_symmetric_bound_plus_sign(k, lo, span):
    """The rule the FINN custom op uses for a datatype's range [lo, hi]: w = ±1 makes the sum lie in
    [−k·B, k·B] with B = max|x|, which needs bit_length(k·B) + 1 signed bits (B > 0)."""
    from bitcycle.golden.accwidth import acc_bits_for_range

    hi = lo + span
    bound = k * max(abs(lo), abs(hi))
    if bound:
        assert acc_bits_for_range(k, (lo, hi)) == bound.bit_length() + 1
    if -(2**15) <= lo and hi < 2**15:  # within a 16-bit operand: the bits-based rule agrees
        assert acc_bits_for_range(k, (lo, hi)) == min_acc_bits(k, 16, x_range=(lo, hi))
