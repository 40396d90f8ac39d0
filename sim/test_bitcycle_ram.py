"""cocotb testbench of hw/rtl/bitcycle_ram.sv: per-lane writes and the one-cycle synchronous read
against a Python model of the memory (random addresses, lane masks and read/write overlap)."""

from __future__ import annotations

import random

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from bitcycle.hwif.rtl import rtl_sources


@cocotb.test()
async def random_lane_writes(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    lane_w, lanes, depth = int(dut.LANE_W.value), int(dut.LANES.value), int(dut.DEPTH.value)
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    model: dict[int, int] = {}
    lane_mask = (1 << lane_w) - 1
    dut.we_i.value = 0
    await FallingEdge(dut.clk_i)
    # fill every word once so the model knows the whole memory
    for addr in range(depth):
        for lane in range(lanes):
            v = rng.getrandbits(lane_w)
            dut.we_i.value, dut.waddr_i.value, dut.wlane_i.value, dut.wdata_i.value = 1, addr, 1 << lane, v
            model[addr] = (model.get(addr, 0) & ~(lane_mask << (lane * lane_w))) | (v << (lane * lane_w))
            await FallingEdge(dut.clk_i)
    checked = 0
    for _ in range(400):
        raddr = rng.randrange(depth)
        expected = model[raddr]  # a read returns the contents before this cycle's write
        we = rng.random() < 0.6
        waddr = rng.randrange(depth)
        lanes_mask = rng.getrandbits(lanes)
        v = rng.getrandbits(lane_w)
        dut.raddr_i.value = raddr
        dut.we_i.value, dut.waddr_i.value, dut.wlane_i.value, dut.wdata_i.value = int(we), waddr, lanes_mask, v
        await RisingEdge(dut.clk_i)
        await FallingEdge(dut.clk_i)
        assert int(dut.rdata_o.value) == expected, f"read {raddr}: {int(dut.rdata_o.value):#x} != {expected:#x}"
        checked += 1
        if we:
            for lane in range(lanes):
                if lanes_mask >> lane & 1:
                    model[waddr] = (model[waddr] & ~(lane_mask << (lane * lane_w))) | (v << (lane * lane_w))
    dut.we_i.value = 0
    assert checked == 400


@pytest.mark.rtl
@pytest.mark.parametrize("params", [dict(LANE_W=32, LANES=3, DEPTH=16), dict(LANE_W=8, LANES=1, DEPTH=5)],
                         ids=["w32x3d16", "w8x1d5"])
def test_bitcycle_ram(params):
    import rtl_runner

    tag = f"w{params['LANE_W']}x{params['LANES']}d{params['DEPTH']}"
    rtl_runner.run("bitcycle_ram", rtl_sources("bitcycle_ram"), "test_bitcycle_ram", parameters=params, tag=tag)
