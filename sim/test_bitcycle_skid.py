"""cocotb testbench of hw/rtl/bitcycle_skid.sv: random words through the skid buffer under random
valid gaps and backpressure; every word arrives once, in order; full throughput without
backpressure; reset with words inside; the protocol monitor checks the output side (TVALID held,
data stable).
"""

from __future__ import annotations

import random

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from axis_monitor import AxisMonitor
from stream_io import Handshake, stream_through
from bitcycle.hwif.rtl import rtl_sources


class _Ports:
    """The skid's output under the AXI-Stream names the monitor expects (no TLAST: each beat counts
    as a packet of one)."""

    def __init__(self, dut):
        self.m_tdata, self.m_tvalid, self.m_tready, self.m_tlast = dut.m_data_o, dut.m_valid_o, dut.m_ready_i, dut.m_valid_o


async def _run(dut, rng, n_words, gap, backpressure):
    """Send n_words random words through the skid; returns the cycles taken."""
    width = int(dut.WIDTH.value)
    words = [rng.getrandbits(width) for _ in range(n_words)]
    got, cycles = await stream_through(dut.clk_i, Handshake(dut.s_valid_i, dut.s_data_i, dut.s_ready_o),
                                       Handshake(dut.m_valid_o, dut.m_data_o, dut.m_ready_i), rng, words,
                                       len(words), gap, backpressure)
    assert got == words, "words lost, repeated or reordered"
    return cycles


@cocotb.test()
async def random_traffic(dut):
    """Order and count under gaps and backpressure, full throughput, reset with words inside."""
    seed = cocotb.RANDOM_SEED
    cocotb.log.info("RANDOM_SEED=%d", seed)
    rng = random.Random(seed)
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    dut.s_valid_i.value = 0
    dut.s_data_i.value = 0
    dut.m_ready_i.value = 0
    dut.rst_ni.value = 0
    await ClockCycles(dut.clk_i, 3)
    dut.rst_ni.value = 1
    mon = AxisMonitor(_Ports(dut), "m", dut.clk_i, dut.rst_ni, name="m").start()
    cycles = await _run(dut, rng, 200, 0.0, 0.0)
    assert cycles <= 200 + 4, f"no full throughput: {cycles} cycles for 200 words"
    for gap, bp in ((0.3, 0.0), (0.0, 0.5), (0.5, 0.5), (0.1, 0.9)):
        await _run(dut, rng, 150, gap, bp)
    # reset with both registers full, then clean traffic again
    await FallingEdge(dut.clk_i)
    dut.s_valid_i.value = 1
    dut.s_data_i.value = 1
    await ClockCycles(dut.clk_i, 4)
    assert int(dut.s_ready_o.value) == 0 and int(dut.m_valid_o.value) == 1
    dut.rst_ni.value = 0
    dut.s_valid_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    assert int(dut.m_valid_o.value) == 0 and int(dut.s_ready_o.value) == 0
    dut.rst_ni.value = 1
    await _run(dut, rng, 100, 0.2, 0.3)
    assert mon.beats > 0 and not mon.violations


@pytest.mark.rtl
@pytest.mark.parametrize("width", [1, 37])
def test_bitcycle_skid(width):
    import rtl_runner

    rtl_runner.run("bitcycle_skid", rtl_sources("bitcycle_skid"), "test_bitcycle_skid", parameters={"WIDTH": width},
                   tag=f"w{width}")
