"""Bit packing of sign(x): 8 values per byte, exact round trip, the byte layout the docs state."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bitcycle.quant.memory import pack_bits, pack_signs, unpack_bits, unpack_signs

torch.set_num_threads(1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_sign_round_trip(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    x.view(-1)[0] = 0.0  # sign(0) must come back as +1
    packed = pack_signs(x)
    assert packed.dtype == torch.uint8
    assert packed.numel() == (x.numel() + 7) // 8
    expected = torch.where(x >= 0, 1.0, -1.0)
    assert torch.equal(unpack_signs(packed, x.shape), expected)


def test_byte_layout_is_lsb_first():
    bits = torch.tensor([1, 0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=torch.bool)
    packed = pack_bits(bits)
    assert packed.tolist() == [0b10000001, 0b00000011]
    assert unpack_bits(packed, bits.shape).tolist() == bits.tolist()


def test_matches_numpy_packbits():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2, size=1000).astype(bool)
    ours = pack_bits(torch.from_numpy(bits)).numpy()
    assert np.array_equal(ours, np.packbits(bits, bitorder="little"))


def test_unpack_rejects_wrong_shape():
    packed = pack_bits(torch.ones(16, dtype=torch.bool))
    with pytest.raises(ValueError, match="cannot unpack"):
        unpack_bits(packed, (3, 8))
    with pytest.raises(ValueError, match="cannot unpack"):
        unpack_bits(packed, (1, 8))
