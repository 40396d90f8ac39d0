"""cocotb testbench of hw/rtl/bitcycle_top.sv: the engine behind its generated AXI4-Lite register
block (cocotbext-axi AxiLiteMaster) and AXI-Stream ports, against bitcycle.golden.

Verilator only: Icarus 11 rejects the unpacked structs of the peakrdl-regblock output.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import cocotb

from bitcycle.hwif import regmap
from bitcycle.hwif.rtl import rtl_sources
from bitcycle.golden import stream as st
from bitcycle_tb import EngineTB, err_mask, max_len, rand_binary, rand_ints
from packed_results_tests import (  # noqa: F401 (cocotb tests)
    handover_freeze_under_backpressure, packed_random_jobs, packed_thresholds, packed_width_refused)


def _rngs():
    seed = cocotb.RANDOM_SEED
    cocotb.log.info("RANDOM_SEED=%d", seed)
    return random.Random(seed), np.random.default_rng(seed)


@cocotb.test()
async def identification_and_parameters(dut):
    """ID, VERSION and the build parameters read back through AXI4-Lite."""
    tb = EngineTB(dut, regs=True)
    await tb.start_clock_and_reset()
    assert await tb.read_reg("ID") == regmap.ID_VALUE == 0x42435943
    assert await tb.read_reg("VERSION") == (regmap.VERSION_MAJOR << 16) | regmap.VERSION_MINOR
    hw0 = await tb.read_reg("HWCFG0")
    assert regmap.field("HWCFG0", "PE", hw0) == tb.geo.pe
    assert regmap.field("HWCFG0", "SIMD", hw0) == tb.geo.simd
    assert regmap.field("HWCFG0", "ACC_BITS", hw0) == tb.acc_bits_max
    assert regmap.field("HWCFG0", "THR_MAX", hw0) == tb.geo.thr_max
    assert regmap.field("HWCFG0", "DATA_WORDS", hw0) * 32 == tb.geo.data_width
    hw1 = await tb.read_reg("HWCFG1")
    assert regmap.field("HWCFG1", "WMEM_DEPTH", hw1) == int(dut.WMEM_DEPTH.value)
    hw2 = await tb.read_reg("HWCFG2")
    assert regmap.field("HWCFG2", "MAX_CHUNKS", hw2) == int(dut.MAX_CHUNKS.value)
    # configuration registers hold what was written; reset values from the .rdl
    assert await tb.read_reg("BITS") == regmap.FIELDS["BITS"]["BITS"][2]
    await tb.write_reg("K", 0x1234)
    assert await tb.read_reg("K") == 0x1234
    status = await tb.status()
    assert (status.busy, status.done, status.error) == (0, 0, 0)


@cocotb.test()
async def jobs_through_registers(dut):
    """All modes through AXI4-Lite + AXI-Stream; bits change between batches on the same weights;
    the cycle counter follows bits."""
    rng, nrng = _rngs()
    tb = EngineTB(dut, regs=True)
    await tb.start_clock_and_reset()
    geo = tb.geo
    m, k = 2 * geo.pe + 1, 2 * geo.simd + 3
    w = rand_binary(nrng, (m, k))
    await tb.load_weights(w)
    cycles = {}
    for bits in (1, 2, 5, 8, 12, 16):
        tb.set_gaps(rng, rng.choice([0.0, 0.3]), rng.choice([0.0, 0.5]))
        if max_len(bits, tb.acc_bits_max) < k:
            continue
        tb.set_gaps(rng, 0.0, 0.0)
        res = await tb.compute(st.MODE_FORWARD, bits, w=w, x=rand_ints(nrng, bits, (k, 4)))
        cycles[bits] = res.cycles
        tb.set_gaps(rng, 0.3, 0.5)
        await tb.compute(st.MODE_BACKWARD_DATA, bits, w=w, dy=rand_ints(nrng, bits, (m, 3)))
        await tb.compute(st.MODE_BACKWARD_WEIGHT, bits, dy=rand_ints(nrng, bits, (3, 2 * geo.simd - 1)),
                         sx=rand_binary(nrng, (geo.pe + 2, 2 * geo.simd - 1)))
    bs = sorted(cycles)
    assert all(cycles[a] < cycles[b] for a, b in zip(bs, bs[1:])), cycles
    thr = np.sort(nrng.integers(-6, 7, size=(m, geo.thr_max)), axis=1)
    await tb.load_thresholds(thr)
    await tb.compute(st.MODE_FORWARD, 1, w=w, x=rand_ints(nrng, 1, (k, 2)), out_sel=st.OUT_THRESHOLD, thresholds=thr)
    await tb.compute(st.MODE_FORWARD, 6, w=w, x=rand_ints(nrng, 6, (k, 2)), out_sel=st.OUT_CLIP8, clip_shift=2)


@cocotb.test()
async def errors_through_registers(dut):
    """Illegal register values and stream-length errors show in ERROR; START clears them; ABORT
    ends a hung job."""
    rng, nrng = _rngs()
    tb = EngineTB(dut, regs=True)
    await tb.start_clock_and_reset()
    res = await tb.job(st.MODE_FORWARD, [], bits=17, m=4, k=4, n=1)
    assert res.done == 1 and res.error == err_mask("bad_bits")
    assert regmap.ERROR_BITS[1] == "BAD_BITS"
    res = await tb.job(6, [], bits=4, m=4, k=4, n=1)
    assert res.error == err_mask("bad_mode")
    w = rand_binary(nrng, (3, 7))
    res = await tb.job(st.MODE_LOAD_WEIGHTS, st.pack_binary_tiles(w, tb.geo)[:-1] if tb.geo.tile_words > 1
                       else [], m=3, k=7)
    if tb.geo.tile_words > 1:
        assert res.error == err_mask("stream_short")
    await tb.load_weights(w)
    assert (await tb.status()).error == 0
    # a job that never gets its input: ABORT returns to idle
    await tb.configure(st.MODE_FORWARD, 3, 3, 7, 2)
    await tb.pulse("START")
    assert (await tb.status()).busy == 1
    await tb.pulse("ABORT")
    res = await tb.wait_done()
    assert (res.busy, res.done, res.aborted) == (0, 1, 1)
    assert await tb.recv_words() == [0]  # the cut job's packet: one marker beat with TLAST
    tb.assert_closed()
    await tb.compute(st.MODE_FORWARD, 3, w=w, x=rand_ints(nrng, 3, (7, 2)))
    assert (await tb.status()).aborted == 0  # START clears it


@cocotb.test()
async def tkeep_marks_result_lanes(dut):
    """TKEEP on the packet's last beat keeps only the int32 lanes that carry results (the monitor
    checks every other beat is all ones); the padding lanes are dropped by the sink."""
    rng, nrng = _rngs()
    tb = EngineTB(dut, regs=True)
    await tb.start_clock_and_reset()
    geo = tb.geo
    lanes = geo.data_width // 32
    for m in range(1, 2 * geo.pe + 2):
        w = rand_binary(nrng, (m, 5))
        await tb.load_weights(w)
        x = rand_ints(nrng, 2, (5, 2))
        await tb.configure(st.MODE_FORWARD, 2, m, 5, 2)
        await tb.pulse("START")
        await tb.source.send(st.words_to_bytes(st.pack_input(st.MODE_FORWARD, geo, 2, ints=x), geo))
        frame = await tb.sink.recv(compact=False)
        keep = frame.tkeep[-geo.data_width // 8:]
        last_lanes = (m - 1) % lanes + 1  # results of the last vector in its last word
        assert keep == [1] * (4 * last_lanes) + [0] * (4 * (lanes - last_lanes)), (m, keep)
        await tb.wait_done()
        tb.assert_closed()


TOP_SOURCES = rtl_sources("bitcycle_top")
TOP_CONFIGS = {
    "p4s16d32": dict(PE=4, SIMD=16, ACC_BITS=24, DATA_W=32, THR_MAX=2, WMEM_DEPTH=32, AMEM_DEPTH=32,
                     TMEM_DEPTH=8, MAX_CHUNKS=8),
    "p16s8d64": dict(PE=16, SIMD=8, ACC_BITS=32, DATA_W=64, THR_MAX=1, WMEM_DEPTH=16, AMEM_DEPTH=16,
                     TMEM_DEPTH=4, MAX_CHUNKS=8),
}


@pytest.mark.rtl
@pytest.mark.parametrize("config", sorted(TOP_CONFIGS))
def test_bitcycle_top(config):
    import rtl_runner

    if rtl_runner.simulator() != "verilator":
        pytest.skip("bitcycle_top needs Verilator: Icarus 11 rejects the generated register block")
    rtl_runner.run("bitcycle_top", TOP_SOURCES, "test_bitcycle_top", parameters=TOP_CONFIGS[config], tag=config)
