"""cocotb testbench of hw/rtl/bitcycle_ram.sv: per-lane writes and the synchronous read (one cycle,
two with OUT_REG) against a Python model of the memory (random addresses, lane masks, read/write
overlap, and read enables that hold the read pipeline)."""

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
    dut.we_i.value, dut.re_i.value = 0, 0
    await FallingEdge(dut.clk_i)
    # fill every word once so the model knows the whole memory
    for addr in range(depth):
        for lane in range(lanes):
            v = rng.getrandbits(lane_w)
            dut.we_i.value, dut.waddr_i.value, dut.wlane_i.value, dut.wdata_i.value = 1, addr, 1 << lane, v
            model[addr] = (model.get(addr, 0) & ~(lane_mask << (lane * lane_w))) | (v << (lane * lane_w))
            await FallingEdge(dut.clk_i)
    checked = 0
    out_reg = int(dut.OUT_REG.value)
    dut.re_i.value = 1
    pipe = [None, None]  # the words in rdata_q and (OUT_REG) rdata2_q
    for _ in range(400):
        raddr = rng.randrange(depth)
        re = rng.random() < 0.7
        we = rng.random() < 0.6
        waddr = rng.randrange(depth)
        lanes_mask = rng.getrandbits(lanes)
        v = rng.getrandbits(lane_w)
        dut.raddr_i.value, dut.re_i.value = raddr, int(re)
        dut.we_i.value, dut.waddr_i.value, dut.wlane_i.value, dut.wdata_i.value = int(we), waddr, lanes_mask, v
        await RisingEdge(dut.clk_i)
        await FallingEdge(dut.clk_i)
        if re:  # a read returns the contents before this cycle's write; both stages move together
            pipe = [model[raddr], pipe[0]]
        expected = pipe[out_reg]
        if expected is not None:
            assert int(dut.rdata_o.value) == expected, f"read {raddr} (re={re}): {int(dut.rdata_o.value):#x} != {expected:#x}"
            checked += 1
        if we:
            for lane in range(lanes):
                if lanes_mask >> lane & 1:
                    model[waddr] = (model[waddr] & ~(lane_mask << (lane * lane_w))) | (v << (lane * lane_w))
    dut.we_i.value = 0
    assert checked >= 350


@pytest.mark.rtl
@pytest.mark.parametrize("params", [dict(LANE_W=32, LANES=3, DEPTH=16, OUT_REG=0), dict(LANE_W=8, LANES=1, DEPTH=5, OUT_REG=0),
                                    dict(LANE_W=16, LANES=2, DEPTH=8, OUT_REG=1)],
                         ids=["w32x3d16", "w8x1d5", "w16x2d8r"])
def test_bitcycle_ram(params):
    import rtl_runner

    tag = f"w{params['LANE_W']}x{params['LANES']}d{params['DEPTH']}r{params['OUT_REG']}"
    rtl_runner.run("bitcycle_ram", rtl_sources("bitcycle_ram"), "test_bitcycle_ram", parameters=params, tag=tag)
