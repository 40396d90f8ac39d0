"""cocotb testbench of hw/rtl/bitcycle_sumtree.sv (combinational): the sum of N random W-bit values,
and the edge cases all zeros and all at their maximum (the widest sum: SumW bits must hold it), for
N of one, a power of two and odd counts that make the two halves of the tree differ in size.
"""

from __future__ import annotations

import pytest

import cocotb
from cocotb.triggers import Timer

from bitcycle.hwif.rtl import rtl_sources
from seeding import seeded_rng


@cocotb.test()
async def sums(dut):
    rng = seeded_rng()
    n, w = int(dut.N.value), int(dut.W.value)
    top = (1 << w) - 1
    cases = [[0] * n, [top] * n, [top if i % 2 else 0 for i in range(n)]]
    cases += [[rng.randint(0, top) for _ in range(n)] for _ in range(300)]
    for vals in cases:
        dut.v_i.value = sum(v << (i * w) for i, v in enumerate(vals))
        await Timer(1, unit="ns")
        assert int(dut.sum_o.value) == sum(vals), f"N={n} W={w} {vals}: got {int(dut.sum_o.value)}"


@pytest.mark.rtl
@pytest.mark.parametrize("n,w", [(1, 3), (2, 1), (3, 3), (8, 3), (11, 3), (5, 7)])
def test_bitcycle_sumtree(n, w):
    import rtl_runner

    # through a one-level wrapper (sim/tb_bitcycle_sumtree.sv): Verilator mis-elaborates a recursive top
    rtl_runner.run("tb_bitcycle_sumtree", [*rtl_sources("bitcycle_sumtree"), str(rtl_runner.SIM_DIR / "tb_bitcycle_sumtree.sv")],
                   "test_bitcycle_sumtree", parameters={"N": n, "W": w}, tag=f"n{n}w{w}")
