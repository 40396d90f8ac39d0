"""cocotb tests of packed results (OUT_CFG.RES_W: 8, 16 or 32 bits per result, several per beat),
shared by the engine and top-level testbenches (each imports them into its cocotb module).

Every job is checked bit-exact against bitcycle.golden.stream (engine_job, unpack_output with the
same width) and its last beat's TKEEP against the real bytes; the AXI-Stream monitors run as in
every other test (TVALID held until the handshake, TLAST on every packet).
"""

from __future__ import annotations

import random

import numpy as np

import cocotb
from cocotb.triggers import RisingEdge

from bitcycle.golden import stream as st
from bitcycle_tb import EngineTB, err_mask, max_len, rand_binary, rand_ints

N_PACKED_JOBS = 18


def _rngs():
    seed = cocotb.RANDOM_SEED
    cocotb.log.info("RANDOM_SEED=%d", seed)
    return random.Random(seed), np.random.default_rng(seed)


async def _tb(dut) -> EngineTB:
    tb = EngineTB(dut, regs=hasattr(dut, "s_axil_awvalid"))
    await tb.start_clock_and_reset()
    return tb


@cocotb.test()
async def packed_random_jobs(dut):
    """Random shapes (many short reductions: the output-bound case), bits, modes, result widths
    8/16/32 with an acc_bits the width holds (RAW) or CLIP8, random gaps and backpressure."""
    rng, nrng = _rngs()
    tb = await _tb(dut)
    geo = tb.geo
    w = None
    for job in range(N_PACKED_JOBS):
        if job % 6 == 0:
            m = rng.randint(1, 3 * geo.pe + 1)
            k = rng.randint(1, 2 * geo.simd + 3)
            w = rand_binary(nrng, (m, k))
            await tb.load_weights(w)
        tb.set_gaps(rng, rng.choice([0.0, 0.3]), rng.choice([0.0, 0.3, 0.7]))
        res_bits = rng.choice([8, 16, 32])
        mode = rng.choice(st.COMPUTE_MODES)
        out_sel = rng.choice([st.OUT_RAW, st.OUT_RAW, st.OUT_CLIP8])
        acc_bits = rng.randint(2, min(res_bits, tb.acc_bits_max)) if out_sel == st.OUT_RAW else tb.acc_bits_max
        m, k = w.shape
        n = rng.randint(1, 5)
        if mode == st.MODE_BACKWARD_WEIGHT:
            m, k, n = rng.randint(1, 4), rng.randint(1, 3 * geo.pe + 1), rng.randint(1, 2 * geo.simd + 1)
        red = {st.MODE_FORWARD: k, st.MODE_BACKWARD_DATA: m, st.MODE_BACKWARD_WEIGHT: n}[mode]
        bits = rng.randint(1, 8)
        while max_len(bits, tb.acc_bits_max) < red:
            bits -= 1
        extremes = rng.random() < 0.3
        kw = dict(acc_bits=acc_bits, out_sel=out_sel, clip_shift=rng.randint(0, 4), res_bits=res_bits)
        if mode == st.MODE_FORWARD:
            await tb.compute(mode, bits, w=w, x=rand_ints(nrng, bits, (k, n), extremes), **kw)
        elif mode == st.MODE_BACKWARD_DATA:
            await tb.compute(mode, bits, w=w, dy=rand_ints(nrng, bits, (m, n), extremes), **kw)
        else:
            await tb.compute(mode, bits, dy=rand_ints(nrng, bits, (m, n), extremes), sx=rand_binary(nrng, (k, n)), **kw)


@cocotb.test()
async def handover_freeze_under_backpressure(dut):
    """Output-bound jobs (one-chunk reductions, int32 results) against a sink that pauses 70 % of
    the time: the output stage falls behind, so groups' first beats reach the accumulators before
    the group ahead is captured and the pipeline freezes. Every job bit-exact, and the freeze seen."""
    rng, nrng = _rngs()
    tb = await _tb(dut)
    geo = tb.geo
    freeze = dut.freeze if hasattr(dut, "freeze") else dut.u_engine.freeze
    frozen = [0]

    async def count():
        while True:
            await RisingEdge(dut.clk_i)
            frozen[0] += int(freeze.value)

    cocotb.start_soon(count())
    m, k = 3 * geo.pe, geo.simd  # three output groups per vector, one chunk each
    w = rand_binary(nrng, (m, k))
    await tb.load_weights(w)
    for bits in (1, 2, 3):
        tb.set_gaps(rng, 0.0, 0.7)
        await tb.compute(st.MODE_FORWARD, bits, w=w, x=rand_ints(nrng, bits, (k, rng.randint(2, 4))))
        tb.set_gaps(rng, 0.0, 0.7)
        await tb.compute(st.MODE_BACKWARD_DATA, bits, w=w, dy=rand_ints(nrng, bits, (m, rng.randint(2, 4))))
    cocotb.log.info("hand-over freeze cycles: %d", frozen[0])
    assert frozen[0] > 0, "no group hand-over froze the pipeline: the stall went untested"


@cocotb.test()
async def packed_thresholds(dut):
    """THRESHOLD counts leave as 8-bit fields (forward), with backpressure."""
    rng, nrng = _rngs()
    tb = await _tb(dut)
    tb.set_gaps(rng, 0.2, 0.5)
    m, k = 3 * tb.geo.pe - 1, tb.geo.simd + 3
    w = rand_binary(nrng, (m, k))
    x = rand_ints(nrng, 2, (k, 3))
    acc = w.astype(np.int64) @ x
    thr = np.sort(nrng.integers(int(acc.min()) - 2, int(acc.max()) + 3, size=(m, tb.geo.thr_max)), axis=1)
    await tb.load_weights(w)
    await tb.load_thresholds(thr)
    for res_bits in (8, 16):
        await tb.compute(st.MODE_FORWARD, 2, w=w, x=x, out_sel=st.OUT_THRESHOLD, thresholds=thr, res_bits=res_bits)


@cocotb.test()
async def packed_width_refused(dut):
    """RAW results wider than RES_W (acc_bits > res_bits) and the reserved code set BAD_RES_W at
    start, nothing is consumed; a clean packed job follows."""
    _, nrng = _rngs()
    tb = await _tb(dut)
    geo = tb.geo
    refused = ((st.res_w_code(8), 9, st.OUT_RAW), (st.res_w_code(16), 17, st.OUT_RAW), (3, 8, st.OUT_RAW), (3, 8, st.OUT_CLIP8))
    for res_w, acc_bits, out_sel in refused:
        res = await tb.job(st.MODE_FORWARD, [], 1, m=geo.pe, k=geo.simd, n=1, acc_bits=acc_bits, out_sel=out_sel,
                           res_w=res_w)
        assert res.done == 1 and res.error == err_mask("bad_res_w"), (res_w, acc_bits, hex(res.error))
    # CLIP8 at a wide acc_bits fits 8-bit fields: accepted
    w = rand_binary(nrng, (geo.pe, geo.simd))
    await tb.load_weights(w)
    x = rand_ints(nrng, 4, (geo.simd, 2))
    await tb.compute(st.MODE_FORWARD, 4, w=w, x=x, out_sel=st.OUT_CLIP8, res_bits=8)
    await tb.compute(st.MODE_FORWARD, 4, w=w, x=x, acc_bits=8, res_bits=8)
