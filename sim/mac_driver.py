"""Stimulus and monitor for ``bitserial_mac``, shared by its testbench and the demo's job runner.

Inputs are driven on the falling edge: a write right after a rising edge can race the flops
in Verilator.
"""

from __future__ import annotations

import random

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from bitcycle.golden import bit_planes


async def start_and_reset(dut, start_clock: bool = True) -> None:
    """Start the clock (cocotb ends it with each test), hold reset two cycles; return on a falling edge."""
    if start_clock:
        cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    dut.rst_ni.value = 0
    dut.valid_i.value = 0
    dut.last_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    await FallingEdge(dut.clk_i)


def collect_results(dut, sink: list[int]):
    """Append every ``result_o`` seen with ``done_o`` to ``sink`` (a background task)."""

    async def monitor():
        while True:
            await RisingEdge(dut.clk_i)
            if dut.done_o.value == 1:
                sink.append(dut.result_o.value.to_signed())

    return cocotb.start_soon(monitor())


async def feed_dot(dut, w: np.ndarray, x: np.ndarray, bits: int, rng: random.Random | None = None,
                   gap_prob: float = 0.0) -> None:
    """Drive one dot product w·x: chunks of SIMD lanes, ``bits`` planes per chunk.

    With ``rng``, idle cycles are inserted with probability ``gap_prob`` and lanes past K carry
    random junk (``lane_en_i`` must mask them).
    """
    simd = int(dut.SIMD.value)
    planes = bit_planes(np.asarray(x)[:, None], bits)[:, :, 0]  # [bits, K]
    n_chunks = -(-len(w) // simd)
    for c in range(n_chunks):
        lanes = range(c * simd, min((c + 1) * simd, len(w)))
        weight = sum(1 << i for i, k in enumerate(lanes) if w[k] > 0)
        en = (1 << len(lanes)) - 1
        for p in range(bits):
            while rng is not None and rng.random() < gap_prob:
                dut.valid_i.value = 0
                await FallingEdge(dut.clk_i)
            junk = (rng.getrandbits(simd) & ~en) if rng is not None else 0
            dut.valid_i.value = 1
            dut.weight_i.value = weight
            dut.plane_i.value = sum(int(planes[p, k]) << i for i, k in enumerate(lanes)) | junk
            dut.lane_en_i.value = en
            dut.last_i.value = int(c == n_chunks - 1)
            await FallingEdge(dut.clk_i)
    dut.valid_i.value = 0
    dut.last_i.value = 0
