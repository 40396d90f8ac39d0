"""The numpy reference of every hardware operation: the oracle that torch, FINN's execution,
the RTL simulation and the board are all compared against, bit for bit.

Imports numpy only, so it runs on a PYNQ board image too.
"""

from bitcycle.golden.bitserial import (
    MAX_BITS,
    MIN_BITS,
    bit_planes,
    bitserial_matmul,
    check_binary,
    check_bits,
    check_ints,
    int_range,
    saturate,
    signed_range,
)

__all__ = [
    "MAX_BITS",
    "MIN_BITS",
    "bit_planes",
    "bitserial_matmul",
    "check_binary",
    "check_bits",
    "check_ints",
    "int_range",
    "saturate",
    "signed_range",
]
