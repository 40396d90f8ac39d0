"""cocotb testbench of hw/rtl/bitcycle_dotcount.sv (combinational): the count of XNOR or AND
products of random and edge-case chunks (all ones, all zeros, alternating, single bits) for each
build mode (0: mode per cycle from xnor_i, 1: XNOR only, 2: AND only) and widths that end in a
partial leaf. The expected count comes from bitcycle.golden.bitserial_matmul: a bipolar dot product
w·x = 2·#XNOR − N, and an integer plane b ∈ {0, 1}: w·b = 2·#AND − Σb.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import cocotb
from cocotb.triggers import Timer

from bitcycle.golden import bitserial_matmul
from bitcycle.hwif.rtl import rtl_sources
from seeding import seeded_rng


def expected_count(w: int, x: int, n: int, xnor: bool) -> int:
    """#XNOR(w, x) or #AND(w, x) over n bits, through the golden dot product."""
    wb = np.array([[1 if (w >> j) & 1 else -1 for j in range(n)]], dtype=np.int8)
    xb = np.array([[(x >> j) & 1] for j in range(n)], dtype=np.int64)
    if xnor:
        dot = int(bitserial_matmul(wb, 2 * xb - 1, 1)[0, 0])  # bipolar codes: 1 -> +1, 0 -> -1
        return (dot + n) // 2
    dot = int(bitserial_matmul(wb, xb, 2)[0, 0])  # x in {0, 1} as a 2-bit integer
    return (dot + int(xb.sum())) // 2


def _cases(n: int, rng: random.Random):
    ones = (1 << n) - 1
    alt = int("01" * n, 2) & ones
    fixed = [(0, 0), (ones, ones), (ones, 0), (0, ones), (alt, alt), (alt, ones ^ alt)]
    fixed += [(1 << j, 1 << j) for j in (0, n - 1)]
    return fixed + [(rng.getrandbits(n), rng.getrandbits(n)) for _ in range(300)]


@cocotb.test()
async def counts(dut):
    rng = seeded_rng()
    n, mode = int(dut.N.value), int(dut.MODE.value)
    for w, x in _cases(n, rng):
        xnor = {0: rng.random() < 0.5, 1: True, 2: False}[mode]
        dut.w_i.value, dut.x_i.value, dut.xnor_i.value = w, x, int(xnor)
        await Timer(1, unit="ns")
        want = expected_count(w, x, n, xnor)
        assert int(dut.n_o.value) == want, f"N={n} mode={mode} w={w:#x} x={x:#x} xnor={xnor}: got {int(dut.n_o.value)}, want {want}"


@pytest.mark.rtl
@pytest.mark.parametrize("n,mode", [(1, 1), (2, 0), (7, 0), (16, 1), (23, 1), (24, 2), (64, 1), (45, 0)])
def test_bitcycle_dotcount(n, mode):
    import rtl_runner

    rtl_runner.run("bitcycle_dotcount", rtl_sources("bitcycle_dotcount"), "test_bitcycle_dotcount",
                   parameters={"N": n, "MODE": mode}, tag=f"n{n}m{mode}")
