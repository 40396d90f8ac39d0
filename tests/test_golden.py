"""The golden bit-serial product equals a plain integer matmul, exactly, for every legal input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bitcycle.golden import bit_planes, bitserial_matmul, int_range


@st.composite
def operands(draw):
    bits = draw(st.integers(1, 16))
    m, k, n = draw(st.integers(1, 9)), draw(st.integers(1, 70)), draw(st.integers(1, 9))
    binary = draw(hnp.arrays(np.int8, (m, k), elements=st.sampled_from([-1, 1])))
    if bits == 1:
        ints = draw(hnp.arrays(np.int64, (k, n), elements=st.sampled_from([-1, 1])))
    else:
        lo, hi = int_range(bits)
        ints = draw(hnp.arrays(np.int64, (k, n), elements=st.integers(lo, hi)))
    return binary, ints, bits


@settings(max_examples=300, deadline=None)
@given(operands())
def test_equals_integer_matmul(ops):
    binary, ints, bits = ops
    got = bitserial_matmul(binary, ints, bits)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, binary.astype(np.int64) @ ints)


@settings(max_examples=200, deadline=None)
@given(operands(), st.integers(2, 20))
def test_acc_bits_saturates_the_exact_sum(ops, acc_bits):
    binary, ints, bits = ops
    exact = binary.astype(np.int64) @ ints
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    np.testing.assert_array_equal(bitserial_matmul(binary, ints, bits, acc_bits=acc_bits), np.clip(exact, lo, hi))


def test_known_values():
    w = np.array([[1, -1, 1, 1]], dtype=np.int8)
    x = np.array([[3], [-4], [-1], [2]])
    assert bitserial_matmul(w, x, 3).tolist() == [[3 + 4 - 1 + 2]]
    # XNOR-popcount: 3 matches, 1 mismatch of 4 → 2·3 − 4 = 2
    assert bitserial_matmul(w, np.array([[1], [-1], [-1], [1]]), 1).tolist() == [[2]]
    assert bitserial_matmul(np.ones((1, 100), np.int8), np.full((100, 1), 127), 8, acc_bits=8).tolist() == [[127]]


def test_bit_planes_are_twos_complement():
    planes = bit_planes(np.array([[-1, 5, -8]]), 4)
    assert planes[:, 0, :].T.tolist() == [[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1]]


@pytest.mark.parametrize(
    "binary, ints, bits, acc_bits, word",
    [
        (np.ones((2, 3), np.int8), np.ones((4, 1), np.int64), 2, None, "K must match"),
        (np.ones(3, np.int8), np.ones((3, 1), np.int64), 2, None, "binary must be a 2-D"),
        (np.array([[1, 0]], np.int8), np.ones((2, 1), np.int64), 2, None, r"binary must hold only -1/\+1"),
        (np.ones((1, 2), np.float32), np.ones((2, 1), np.int64), 2, None, "binary must be an integer"),
        (np.ones((1, 2), np.int8), np.array([[2], [0]]), 2, None, "do not fit in bits=2"),
        (np.ones((1, 2), np.int8), np.array([[0], [1]]), 1, None, "bipolar"),
        (np.ones((1, 2), np.int8), np.ones((2, 1), np.float64), 2, None, "ints must be an integer"),
        (np.ones((1, 2), np.int8), np.ones((2, 1), np.int64), 0, None, "bits must be an integer in 1..16"),
        (np.ones((1, 2), np.int8), np.ones((2, 1), np.int64), 17, None, "bits must be"),
        (np.ones((1, 2), np.int8), np.ones((2, 1), np.int64), 2, 1, "acc_bits must be"),
    ],
)
def test_bad_input_names_the_argument(binary, ints, bits, acc_bits, word):
    with pytest.raises(ValueError, match=word):
        bitserial_matmul(binary, ints, bits, acc_bits=acc_bits)
