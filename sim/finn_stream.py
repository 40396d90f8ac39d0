"""Stream stimulus for testbenches of dataflow layers with FINN's port names (ap_clk, in0_V_*,
out0_V_*): clock and reset, and stream_io's source and sink on those ports. The protocol itself
is checked by axis_monitor.AxisMonitor on ``FinnPorts``."""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

import stream_io
from axis_monitor import AxisMonitor
from stream_io import Handshake


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
    """Offer ``beats`` on in0 (a beat is withheld with probability ``gap`` per cycle) and take ``n_out``
    beats from out0 (TREADY low with probability ``bp``): (the output beats, cycles it took)."""
    return await stream_io.stream_through(
        dut.ap_clk, Handshake(dut.in0_V_TVALID, dut.in0_V_TDATA, dut.in0_V_TREADY),
        Handshake(dut.out0_V_TVALID, dut.out0_V_TDATA, dut.out0_V_TREADY), rng, beats, n_out, gap, bp)
