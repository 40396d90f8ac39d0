"""A valid/ready source and sink for any testbench, whatever its port names: the source offers
beats under random gaps and holds each one until it is taken (AXI4-Stream never withdraws TVALID);
the sink takes beats under random backpressure. Both act at the falling edge and read the
handshake settled (ReadOnly), so a combinational ready is seen as the rising edge will see it."""

from __future__ import annotations

from typing import NamedTuple

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly
from cocotb.utils import get_sim_time


class Handshake(NamedTuple):
    """One side of a stream: its valid, data and ready signals."""

    valid: object
    data: object
    ready: object


async def stream_through(clk, src: Handshake, snk: Handshake, rng, beats: list[int], n_out: int, gap: float,
                         bp: float, period_ns: float = 10) -> tuple[list[int], float]:
    """Offer ``beats`` on ``src`` (withheld with probability ``gap`` per cycle) and take ``n_out``
    beats from ``snk`` (ready low with probability ``bp``): (the beats taken, cycles it took)."""
    got: list[int] = []

    async def drive():
        i, offered, taken = 0, False, False
        while True:
            await FallingEdge(clk)
            if taken:
                i, offered = i + 1, False
            if i == len(beats):
                src.valid.value = 0
                return
            if not offered and rng.random() >= gap:  # a beat on offer stays on offer
                src.data.value = beats[i]
                offered = True
            src.valid.value = int(offered)
            await ReadOnly()  # ready may follow the sink's ready written this edge: read it settled
            taken = offered and int(src.ready.value) == 1

    async def sink():
        while len(got) < n_out:
            await FallingEdge(clk)
            ready = int(rng.random() >= bp)
            snk.ready.value = ready
            await ReadOnly()
            if ready and int(snk.valid.value):
                got.append(int(snk.data.value))
        await FallingEdge(clk)
        snk.ready.value = 0

    t0 = get_sim_time("ns")
    d = cocotb.start_soon(drive())
    await sink()
    await d
    return got, (get_sim_time("ns") - t0) / period_ns
