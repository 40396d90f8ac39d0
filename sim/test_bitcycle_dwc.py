"""cocotb testbench of hw/rtl/bitcycle_dwc.sv: random beats (padding bits above IBITS set, which
must be ignored) under random input gaps and output backpressure; every output beat equals
bitcycle.golden.widthconv's repacking of the bit stream (padding 0); the faster side moves one beat
per cycle when the stream flows; the protocol monitor checks the output side. One case per
structure: gather (OBITS = R·IBITS), scatter (IBITS = R·OBITS), bit buffer (neither).
"""

from __future__ import annotations

import math
import random

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly
from cocotb.utils import get_sim_time

from axis_monitor import AxisMonitor
from bitcycle.golden.widthconv import repack_bits
from bitcycle.hwif.rtl import rtl_sources


class _Ports:
    def __init__(self, dut):
        self.m_tdata, self.m_tvalid, self.m_tready = dut.out0_V_TDATA, dut.out0_V_TVALID, dut.out0_V_TREADY
        self.m_tlast = dut.out0_V_TVALID  # no TLAST: each beat is a packet of one


async def _run(dut, rng, beats, n_out, gap, bp):
    got = []

    async def drive():
        i, offered, taken = 0, False, False
        while True:
            await FallingEdge(dut.ap_clk)
            if taken:
                i, offered = i + 1, False
            if i == len(beats):
                dut.in0_V_TVALID.value = 0
                return
            if not offered and rng.random() >= gap:
                dut.in0_V_TDATA.value = beats[i]
                offered = True
            dut.in0_V_TVALID.value = int(offered)
            await ReadOnly()  # TREADY may follow the sink's TREADY written this edge: read it settled
            taken = offered and int(dut.in0_V_TREADY.value) == 1

    async def sink():
        while len(got) < n_out:
            await FallingEdge(dut.ap_clk)
            ready = int(rng.random() >= bp)
            dut.out0_V_TREADY.value = ready
            await ReadOnly()
            if ready and int(dut.out0_V_TVALID.value):
                got.append(int(dut.out0_V_TDATA.value))
        await FallingEdge(dut.ap_clk)
        dut.out0_V_TREADY.value = 0

    t0 = get_sim_time("ns")
    d = cocotb.start_soon(drive())
    await sink()
    await d
    return got, (get_sim_time("ns") - t0) / 10


@cocotb.test()
async def repacks_like_the_golden_model(dut):
    ibits, obits = int(dut.IBITS.value), int(dut.OBITS.value)
    iw = (ibits + 7) // 8 * 8
    rng = random.Random(cocotb.RANDOM_SEED)
    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    dut.in0_V_TVALID.value = 0
    dut.in0_V_TDATA.value = 0
    dut.out0_V_TREADY.value = 0
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 3)
    dut.ap_rst_n.value = 1
    mon = AxisMonitor(_Ports(dut), "m", dut.ap_clk, dut.ap_rst_n, name="out0").start()
    unit = math.lcm(ibits, obits) // ibits  # input beats per whole number of output beats
    for gap, bp in ((0.0, 0.0), (0.3, 0.3), (0.6, 0.1), (0.1, 0.8)):
        n_in = unit * rng.randint(3, 6)
        data = [rng.getrandbits(ibits) for _ in range(n_in)]
        pad = [rng.getrandbits(iw - ibits) << ibits if iw > ibits else 0 for _ in range(n_in)]
        want = repack_bits(data, ibits, obits)
        got, cycles = await _run(dut, rng, [d | p for d, p in zip(data, pad)], len(want), gap, bp)
        assert got == want, f"gap {gap} bp {bp}: repacked beats differ from the golden model"
        if gap == 0 and bp == 0:
            assert cycles <= max(n_in, len(want)) + 3, f"{cycles} cycles for {n_in} beats in, {len(want)} out"
    assert mon.beats > 0 and not mon.violations


@pytest.mark.rtl
@pytest.mark.parametrize("ibits,obits", [(4, 512), (72, 8), (4, 18), (18, 4)])
def test_bitcycle_dwc(ibits, obits):
    import rtl_runner

    rtl_runner.run("bitcycle_dwc", rtl_sources("bitcycle_dwc"), "test_bitcycle_dwc",
                   parameters={"IBITS": ibits, "OBITS": obits}, tag=f"i{ibits}o{obits}")
