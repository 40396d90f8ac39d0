"""Stream stimulus for testbenches of dataflow layers with FINN's port names (ap_clk, in0_V_*,
out0_V_*): a source that offers beats under random gaps and holds each until taken, and a sink
with random backpressure. The protocol itself is checked by axis_monitor.AxisMonitor on
``FinnPorts``."""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly
from cocotb.utils import get_sim_time

from axis_monitor import AxisMonitor


class FinnPorts:
    """The output side as AxisMonitor reads it (no TLAST: each beat is a packet of one)."""

    def __init__(self, dut):
        self.m_tdata, self.m_tvalid, self.m_tready = dut.out0_V_TDATA, dut.out0_V_TVALID, dut.out0_V_TREADY
        self.m_tlast = dut.out0_V_TVALID


async def start(dut) -> AxisMonitor:
    """Clock (10 ns), ports idle, 3 cycles of reset; the output side's protocol monitor, running."""
    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    dut.in0_V_TVALID.value = 0
    dut.in0_V_TDATA.value = 0
    dut.out0_V_TREADY.value = 0
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 3)
    dut.ap_rst_n.value = 1
    return AxisMonitor(FinnPorts(dut), "m", dut.ap_clk, dut.ap_rst_n, name="out0").start()


async def stream_through(dut, rng, beats: list[int], n_out: int, gap: float, bp: float) -> tuple[list[int], float]:
    """Offer ``beats`` (a beat is withheld with probability ``gap`` per cycle) and take ``n_out``
    output beats (TREADY low with probability ``bp``): (the output beats, cycles it took)."""
    got: list[int] = []

    async def drive():
        i, offered, taken = 0, False, False
        while True:
            await FallingEdge(dut.ap_clk)
            if taken:
                i, offered = i + 1, False
            if i == len(beats):
                dut.in0_V_TVALID.value = 0
                return
            if not offered and rng.random() >= gap:  # a beat on offer stays on offer
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
