"""cocotb testbench of hw/rtl/bitcycle_popcount.sv (combinational): the number of ones of random and
edge-case vectors (all zeros, all ones, alternating, one bit at each end, all but one) for widths
that are one leaf, a leaf and a partial one, and several levels of bitcycle_sumtree.
"""

from __future__ import annotations

import random

import pytest

import cocotb
from cocotb.triggers import Timer

from bitcycle.hwif.rtl import rtl_sources
from seeding import seeded_rng


def _vectors(n: int, rng: random.Random) -> list[int]:
    ones = (1 << n) - 1
    fixed = [0, ones, int("01" * n, 2) & ones, int("10" * n, 2) & ones, 1, 1 << (n - 1), ones ^ 1, ones >> 1]
    return fixed + [rng.getrandbits(n) for _ in range(400)]


@cocotb.test()
async def counts(dut):
    rng = seeded_rng()
    n = int(dut.N.value)
    for v in _vectors(n, rng):
        dut.v_i.value = v
        await Timer(1, unit="ns")
        assert int(dut.n_o.value) == bin(v).count("1"), f"N={n} v={v:#x}: got {int(dut.n_o.value)}"


@pytest.mark.rtl
@pytest.mark.parametrize("n", [1, 5, 6, 7, 13, 32, 64, 65])
def test_bitcycle_popcount(n):
    import rtl_runner

    rtl_runner.run("bitcycle_popcount", rtl_sources("bitcycle_popcount"), "test_bitcycle_popcount",
                   parameters={"N": n}, tag=f"n{n}")
