"""cocotb testbench of hw/rtl/bitcycle_engine.sv (configuration on ports, AXI-Stream through
cocotbext-axi) against bitcycle.golden.stream.engine_job / bitserial_matmul.

Runs on Verilator (default) and Icarus (SIM=icarus): the engine has no generated register block.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from bitcycle.golden import stream as st
from bitcycle.hwif.rtl import rtl_sources
from bitcycle_tb import EngineTB, err_mask, max_len, rand_binary, rand_ints, result_words
from packed_results_tests import (  # noqa: F401 (cocotb tests)
    handover_freeze_under_backpressure, packed_random_jobs, packed_thresholds, packed_width_refused)

N_RANDOM_JOBS = 24
CHECK_CYCLES = 4  # START to the job running: the configuration check (CheckLat + 1 edges, then the decision)


def _rngs():
    seed = cocotb.RANDOM_SEED
    cocotb.log.info("RANDOM_SEED=%d", seed)
    return random.Random(seed), np.random.default_rng(seed)


def _shape_limits(tb: EngineTB):
    geo = tb.geo
    dut = tb.dut
    wdepth = int(dut.WMEM_DEPTH.value)
    chunks = int(dut.MAX_CHUNKS.value)
    return geo, wdepth, chunks


def random_layer(tb: EngineTB, rng: random.Random):
    """M, K such that W fits the weight memory and both reductions fit the vector buffer."""
    geo, wdepth, chunks = _shape_limits(tb)
    while True:
        m = rng.randint(1, min(geo.pe * chunks, 3 * geo.pe + 3))
        k = rng.randint(1, min(geo.simd * chunks, 3 * geo.simd + 5))
        if -(-m // geo.pe) * -(-k // geo.simd) <= wdepth:
            return m, k


@cocotb.test()
async def random_jobs(dut):
    """Random shapes, bits 1..16, all three modes, random acc_bits/out_sel, gaps and backpressure;
    the weights stay loaded while bits change from job to job."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    w = None
    for job in range(N_RANDOM_JOBS):
        if job % 6 == 0:
            m, k = random_layer(tb, rng)
            w = rand_binary(nrng, (m, k))
            tb.set_gaps(rng, 0.3, 0.0)
            await tb.load_weights(w)
        tb.set_gaps(rng, rng.choice([0.0, 0.2, 0.5]), rng.choice([0.0, 0.3, 0.7]))
        mode = rng.choice(st.COMPUTE_MODES)
        n = rng.randint(1, 4)
        m, k = w.shape
        red = {0: k, 1: m, 2: n}[mode]
        bits = rng.randint(1, 16)
        while max_len(bits, tb.acc_bits_max) < red:
            bits -= 1
        acc_bits = rng.choice([tb.acc_bits_max, rng.randint(2, tb.acc_bits_max)])
        out_sel = rng.choice([st.OUT_RAW, st.OUT_RAW, st.OUT_CLIP8])
        clip_shift = rng.randint(0, 6)
        extremes = rng.random() < 0.3
        if mode == st.MODE_FORWARD:
            await tb.compute(mode, bits, w=w, x=rand_ints(nrng, bits, (k, n), extremes), acc_bits=acc_bits,
                             out_sel=out_sel, clip_shift=clip_shift)
        elif mode == st.MODE_BACKWARD_DATA:
            await tb.compute(mode, bits, w=w, dy=rand_ints(nrng, bits, (m, n), extremes), acc_bits=acc_bits,
                             out_sel=out_sel, clip_shift=clip_shift)
        else:
            kk = rng.randint(1, 2 * tb.geo.pe + 1)
            nn = rng.randint(1, 2 * tb.geo.simd + 1)
            mm = rng.randint(1, 4)
            while max_len(bits, tb.acc_bits_max) < nn:
                bits -= 1
            await tb.compute(mode, bits, dy=rand_ints(nrng, bits, (mm, nn), extremes), sx=rand_binary(nrng, (kk, nn)),
                             acc_bits=acc_bits, out_sel=out_sel, clip_shift=clip_shift)


@cocotb.test()
async def thresholds_forward(dut):
    """Per-channel integer thresholds (forward): output = number of thresholds reached."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    tb.set_gaps(rng, 0.2, 0.4)
    for bits in (1, 2, 8):
        m, k = random_layer(tb, rng)
        w = rand_binary(nrng, (m, k))
        x = rand_ints(nrng, bits, (k, 3))
        acc = w.astype(np.int64) @ x
        t = rng.randint(1, tb.geo.thr_max)
        thr = np.sort(nrng.integers(int(acc.min()) - 2, int(acc.max()) + 3, size=(m, t)), axis=1)
        await tb.load_weights(w)
        await tb.load_thresholds(thr)
        await tb.compute(st.MODE_FORWARD, bits, w=w, x=x, out_sel=st.OUT_THRESHOLD, thresholds=thr)


@cocotb.test()
async def thresholds_after_one_row_group(dut):
    """Two groups pending, the older a one-row group (M = 2*PE + 1): it drains in one beat, so the
    next group is captured the cycle after, the cycle its thresholds are still being read. Rows of
    the full groups reach all their thresholds, the one-row group's none: thresholds of the wrong
    group show as wrong counts."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    tb.set_gaps(rng, 0.0, 0.0)
    pe, t = tb.geo.pe, tb.geo.thr_max
    m, k = 2 * pe + 1, min(3, tb.geo.simd)
    w = rand_binary(nrng, (m, k))
    x = rand_ints(nrng, 1, (k, 4))
    acc = w.astype(np.int64) @ x
    thr = np.full((m, t), int(acc.min()) - 1, dtype=np.int64)
    thr[-1, :] = int(acc.max()) + 1
    await tb.load_weights(w)
    await tb.load_thresholds(thr)
    await tb.compute(st.MODE_FORWARD, 1, w=w, x=x, out_sel=st.OUT_THRESHOLD, thresholds=thr)


@cocotb.test()
async def saturation_at_limit(dut):
    """The longest reduction the overflow check allows, at extreme operands, is exact in the
    ACC_BITS accumulator; outputs saturate to acc_bits; one step longer sets the overflow bit."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    geo = tb.geo
    acc = tb.acc_bits_max
    # bits chosen so the longest legal K fits the memories
    bits = next(b for b in range(16, 0, -1) if max_len(b, acc) >= geo.simd * 2)
    limit = max_len(bits, acc)
    chunks = int(dut.MAX_CHUNKS.value)
    k = min(limit, geo.simd * chunks)
    w = -np.ones((geo.pe, k), dtype=np.int8)
    x = np.full((k, 2), -(1 << (bits - 1)), dtype=np.int64)  # (-1)·(-2^(b-1)) summed k times
    await tb.load_weights(w)
    res = await tb.compute(st.MODE_FORWARD, bits, w=w, x=x)
    got = st.unpack_output(res.words, 0, geo, geo.pe, k, 2)
    assert int(got[0, 0]) == k * (1 << (bits - 1))
    for acc_bits in (2, 8, 13):
        await tb.compute(st.MODE_FORWARD, bits, w=w, x=x, acc_bits=acc_bits)
        await tb.compute(st.MODE_FORWARD, bits, w=w, x=-x - 1 if bits > 1 else x, acc_bits=acc_bits)
    # overflow: the smallest (bits, len) beyond the accumulator
    over_bits = next(b for b in range(2, 17) if max_len(b, acc) < geo.simd * chunks)
    over_k = max_len(over_bits, acc) + 1
    res = await tb.job(st.MODE_FORWARD, [], over_bits, m=1, k=over_k, n=1)
    assert res.done == 1 and res.error == err_mask("overflow"), f"error={res.error:#x}"


@cocotb.test()
async def illegal_configurations(dut):
    """Every illegal register value sets its error bit at once (nothing consumed, no hang), and a
    clean job follows."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    geo, wdepth, chunks = _shape_limits(tb)
    acc = tb.acc_bits_max
    cases = [
        (dict(mode=5), "bad_mode"),
        (dict(mode=7), "bad_mode"),
        (dict(mode=st.MODE_FORWARD, bits=0), "bad_bits"),
        (dict(mode=st.MODE_BACKWARD_DATA, bits=17), "bad_bits"),
        (dict(mode=st.MODE_FORWARD, bits=31), "bad_bits"),
        (dict(mode=st.MODE_FORWARD, m=0), "bad_shape"),
        (dict(mode=st.MODE_BACKWARD_WEIGHT, n=0), "bad_shape"),
        (dict(mode=st.MODE_LOAD_WEIGHTS, k=0), "bad_shape"),
        (dict(mode=st.MODE_LOAD_THRESHOLDS, m=0), "bad_shape"),
        (dict(mode=st.MODE_FORWARD, k=geo.simd * chunks + 1), "bad_shape"),
        (dict(mode=st.MODE_BACKWARD_DATA, m=geo.pe * chunks + 1), "bad_shape"),
        (dict(mode=st.MODE_LOAD_WEIGHTS, m=geo.pe * (wdepth + 1), k=1), "bad_shape"),
        (dict(mode=st.MODE_FORWARD, acc_bits=1), "bad_acc_bits"),
        (dict(mode=st.MODE_FORWARD, acc_bits=acc + 1), "bad_acc_bits"),
        (dict(mode=st.MODE_FORWARD, out_sel=3), "bad_out_sel"),
        (dict(mode=st.MODE_BACKWARD_DATA, out_sel=st.OUT_THRESHOLD), "bad_out_sel"),
        (dict(mode=st.MODE_BACKWARD_WEIGHT, out_sel=st.OUT_THRESHOLD), "bad_out_sel"),
    ]
    for kw, name in cases:
        cfg = dict(mode=st.MODE_FORWARD, bits=4, m=4, k=8, n=2, acc_bits=acc, out_sel=st.OUT_RAW)
        cfg.update(kw)
        res = await tb.job(cfg.pop("mode"), [], **cfg)
        assert res.done == 1 and res.busy == 0, f"{kw}: not done"
        assert res.error == err_mask(name), f"{kw}: error {res.error:#x}, expected {name}"
        assert tb.source.empty() and int(dut.busy_o.value) == 0
    w = rand_binary(nrng, (5, 9))
    await tb.load_weights(w)
    await tb.compute(st.MODE_FORWARD, 3, w=w, x=rand_ints(nrng, 3, (9, 2)))


@cocotb.test()
async def stream_length_errors(dut):
    """A short packet (TLAST early) aborts with stream_short; a long one (no TLAST at the end) sets
    stream_long, drains to TLAST and still delivers the right result; the next job is clean."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    tb.set_gaps(rng, 0.3, 0.3)
    geo = tb.geo
    m, k = geo.pe + 1, 2 * geo.simd + 3
    w = rand_binary(nrng, (m, k))
    await tb.load_weights(w)
    # short weight load
    words = st.pack_binary_tiles(rand_binary(nrng, (m, k)), geo)
    res = await tb.job(st.MODE_LOAD_WEIGHTS, words[:-1], m=m, k=k)
    assert res.done == 1 and res.error == err_mask("stream_short"), f"{res.error:#x}"
    await tb.load_weights(w)
    # short forward input, inside the first vector (no output started)
    x = rand_ints(nrng, 5, (k, 3))
    words = st.pack_input(st.MODE_FORWARD, geo, 5, ints=x)
    res = await tb.job(st.MODE_FORWARD, words[: len(words) // 3 - 1], 5, m, k, 3, expect_output=False)
    assert res.done == 1 and res.error == err_mask("stream_short"), f"{res.error:#x}"
    assert res.aborted == 1 and res.words == [0], res.words  # the packet: the marker beat only
    await tb.compute(st.MODE_FORWARD, 5, w=w, x=x)
    # long forward input: four junk words after the last expected one
    junk = np.array([0xDEAD, 0xBEEF, 1, 2], dtype=np.uint64)
    res = await tb.job(st.MODE_FORWARD, np.concatenate([words, junk]), 5, m, k, 3)
    assert res.done == 1 and res.error == err_mask("stream_long"), f"{res.error:#x}"
    got = st.unpack_output(res.words, st.MODE_FORWARD, geo, m, k, 3)
    assert np.array_equal(got, st.engine_job(0, 5, tb.acc_bits_max, ints=x, weights=w))
    # long threshold load
    thr = nrng.integers(-5, 5, size=(m, 1))
    res = await tb.job(st.MODE_LOAD_THRESHOLDS, np.concatenate([st.pack_thresholds(thr, geo), junk]), m=m)
    assert res.done == 1 and res.error == err_mask("stream_long"), f"{res.error:#x}"
    # a clean backward-data job afterwards
    await tb.compute(st.MODE_BACKWARD_DATA, 7, w=w, dy=rand_ints(nrng, 7, (m, 2)))


@cocotb.test()
async def reset_and_abort_mid_transfer(dut):
    """Reset in the middle of a job's input and output, and abort in the middle of a job: the
    engine returns to idle and the next job is exact."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    geo = tb.geo
    m, k = 2 * geo.pe + 1, 2 * geo.simd + 1
    w = rand_binary(nrng, (m, k))
    x = rand_ints(nrng, 6, (k, 4))
    words = st.pack_input(st.MODE_FORWARD, geo, 6, ints=x)
    for cut in (len(words) // 2, len(words) + 3):  # mid input; after the input, mid output
        await tb.load_weights(w)
        tb.set_gaps(rng, 0.0, 0.9)
        await tb.configure(st.MODE_FORWARD, 6, m, k, 4)
        await tb.pulse("start")
        tb.source.send_nowait(st.words_to_bytes(words, geo))
        await ClockCycles(dut.clk_i, cut)
        assert int(dut.busy_o.value) == 1
        await tb.reset()
        assert int(dut.busy_o.value) == 0 and int(dut.done_o.value) == 0
        tb.source.clear()
        tb.sink.clear()
        tb.set_gaps(rng, 0.2, 0.2)
        await tb.load_weights(w)
        await tb.compute(st.MODE_FORWARD, 6, w=w, x=x)
    # abort with no input at all, then with half an input
    await tb.configure(st.MODE_BACKWARD_DATA, 3, m, k, 2)
    await tb.pulse("start")
    await ClockCycles(dut.clk_i, 20)
    assert int(dut.busy_o.value) == 1
    await tb.pulse("abort")
    res = await tb.wait_done()
    assert (res.done, res.aborted) == (1, 1)
    assert await tb.recv_words() == [0]
    tb.assert_closed()
    await tb.compute(st.MODE_BACKWARD_DATA, 3, w=w, dy=rand_ints(nrng, 3, (m, 2)))


async def _until(dut, cond, limit=20000):
    for _ in range(limit):
        await RisingEdge(dut.clk_i)
        if cond():
            return
    raise AssertionError("condition never reached")


@cocotb.test()
async def abort_with_beat_on_offer(dut):
    """CTRL.ABORT while an output beat waits for TREADY: TVALID stays up until the beat is taken
    (the monitor checks), the packet ends with TLAST (marker beat), the rest of the input packet
    is drained, STATUS says aborted; a START while the engine closes its streams is ignored,
    and the next job is exact. Repeated at random points of the job."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    geo = tb.geo
    m, k, n = 2 * geo.pe + 1, geo.simd + 3, 5
    w = rand_binary(nrng, (m, k))
    await tb.load_weights(w)
    for trial in range(6):
        x = rand_ints(nrng, 4, (k, n))
        words = st.pack_input(st.MODE_FORWARD, geo, 4, ints=x)
        expected = result_words(st.engine_job(0, 4, tb.acc_bits_max, ints=x, weights=w), 0, geo)
        tb.set_gaps(rng, rng.choice([0.0, 0.3]), 0.0)
        tb.sink.pause = True
        await tb.configure(st.MODE_FORWARD, 4, m, k, n)
        await tb.pulse("start")
        tb.source.send_nowait(st.words_to_bytes(words, geo))
        await _until(dut, lambda: int(dut.m_axis_tvalid.value) == 1)
        if trial % 2:
            tb.set_gaps(rng, 0.0, 0.5)  # let some beats go first
            await ClockCycles(dut.clk_i, rng.randint(1, 40))
            tb.set_gaps(rng, 0.0, 0.0)  # (a pause generator would override the pause below)
            tb.sink.pause = True  # (TREADY falls a cycle later: a beat seen now may still be taken)
            await _until(dut, lambda: int(dut.m_axis_tready.value) == 0 and int(dut.m_axis_tvalid.value) == 1)
        await tb.pulse("abort")
        if trial == 0:
            await tb.pulse("start")  # ignored while closing
        await ClockCycles(dut.clk_i, rng.randint(0, 30))
        assert int(dut.m_axis_tvalid.value) == 1, "TVALID dropped"
        tb.set_gaps(rng, 0.0, 0.3)
        res = await tb.wait_done()
        assert (res.done, res.aborted, res.error) == (1, 1, 0), res
        got = await tb.recv_words()
        if got[-1] == 0 and got[:-1] == expected[: len(got) - 1]:
            pass  # results so far, then the marker
        else:
            assert got == expected[: len(got)] and len(got) == len(expected), (got, expected)
        tb.assert_closed()
        await tb.compute(st.MODE_FORWARD, 4, w=w, x=x)


@cocotb.test()
async def short_packet_after_output_began(dut):
    """An input packet that ends inside a later vector, after results of earlier vectors have left:
    stream_short, aborted, and the output packet still ends with TLAST (results so far + marker)."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    geo = tb.geo
    m, k, n = geo.pe + 2, 2 * geo.simd + 1, 6
    w = rand_binary(nrng, (m, k))
    await tb.load_weights(w)
    for bits in (1, 3, 9):
        tb.set_gaps(rng, rng.choice([0.0, 0.3]), rng.choice([0.0, 0.3, 0.8]))
        x = rand_ints(nrng, bits, (k, n))
        words = st.pack_input(st.MODE_FORWARD, geo, bits, ints=x)
        expected = result_words(st.engine_job(0, bits, tb.acc_bits_max, ints=x, weights=w), 0, geo)
        cut = rng.randint(len(words) // 2, len(words) - 2)
        res = await tb.job(st.MODE_FORWARD, words[:cut], bits, m, k, n)
        assert res.error == err_mask("stream_short") and res.aborted == 1, res
        assert res.words[-1] == 0 and res.words[:-1] == expected[: len(res.words) - 1], (res.words, expected)
        await tb.compute(st.MODE_FORWARD, bits, w=w, x=x)


def _one_job_per_mode(geo, nrng, w, fwd_bits):
    """(mode, bits, M, K, N, input words) of a weight load of w, a forward job on it (fwd_bits,
    N = 3) and a backward-weight job: the jobs an abort test cuts."""
    m, k = w.shape
    return [(st.MODE_LOAD_WEIGHTS, 1, m, k, 1, st.pack_binary_tiles(w, geo)),
            (st.MODE_FORWARD, fwd_bits, m, k, 3, st.pack_input(0, geo, fwd_bits, ints=rand_ints(nrng, fwd_bits, (k, 3)))),
            (st.MODE_BACKWARD_WEIGHT, 2, 2, k, geo.simd + 1,
             st.pack_input(2, geo, 2, ints=rand_ints(nrng, 2, (2, geo.simd + 1)),
                           binary=rand_binary(nrng, (k, geo.simd + 1))))]


@cocotb.test()
async def abort_drains_open_input(dut):
    """Abort in the middle of an input packet (every mode): the rest of the packet is taken and
    dropped, not left for the next job; a second abort stops a drain whose TLAST never comes."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    geo = tb.geo
    m, k = geo.pe + 1, geo.simd + 2
    w = rand_binary(nrng, (m, k))
    await tb.load_weights(w)
    for mode, bits, mm, kk, nn, words in _one_job_per_mode(geo, nrng, w, 6):
        tb.set_gaps(rng, 0.7, 0.2)
        await tb.configure(mode, bits, mm, kk, nn)
        await tb.pulse("start")
        tb.source.send_nowait(st.words_to_bytes(words, geo))
        await ClockCycles(dut.clk_i, CHECK_CYCLES)  # past the check (aborts there: the test after this one)
        await _until(dut, lambda: int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value))
        await ClockCycles(dut.clk_i, rng.randint(0, max(1, len(words) // 4)))
        await tb.pulse("abort")
        res = await tb.wait_done()
        assert res.done == 1 and (res.aborted == 1 or res.error == 0), res  # (or it ended first)
        if mode in st.COMPUTE_MODES:
            await tb.recv_words()
        tb.assert_closed()
        await tb.load_weights(w)
    # the input packet is cut off upstream (never gets TLAST): the second abort ends the drain
    tb.set_gaps(rng, 0.0, 0.0)
    words = st.pack_binary_tiles(w, geo)
    await tb.configure(st.MODE_LOAD_WEIGHTS, 1, m, k, 1)
    await tb.pulse("start")
    await FallingEdge(dut.clk_i)  # one beat without TLAST, driven by hand (the source is idle)
    dut.s_axis_tdata.value = int(words[0])
    dut.s_axis_tlast.value = 0
    dut.s_axis_tvalid.value = 1
    await _until(dut, lambda: int(dut.s_axis_tready.value) == 1)
    await FallingEdge(dut.clk_i)
    dut.s_axis_tvalid.value = 0
    await tb.pulse("abort")
    await ClockCycles(dut.clk_i, 20)
    await tb.pulse("abort")
    res = await tb.wait_done()
    assert res.aborted == 1
    tb.mon_in.open = False  # that packet was cut upstream on purpose
    await tb.load_weights(w)
    await tb.compute(st.MODE_FORWARD, 2, w=w, x=rand_ints(nrng, 2, (k, 2)))


@cocotb.test()
async def abort_in_check_drains_waiting_input(dut):
    """ABORT during the configuration check, the job's input packet already at the port (the skid
    buffer holds its first words): the packet is drained to its TLAST, not left for the next job,
    and no output packet opens. Each mode, then an exact job."""
    rng, nrng = _rngs()
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    geo = tb.geo
    m, k = geo.pe + 1, geo.simd + 2
    w = rand_binary(nrng, (m, k))
    for mode, bits, mm, kk, nn, words in _one_job_per_mode(geo, nrng, w, 3):
        tb.set_gaps(rng, 0.0, 0.0)
        await tb.configure(mode, bits, mm, kk, nn)
        tb.source.send_nowait(st.words_to_bytes(words, geo))  # offered before START
        await _until(dut, lambda: int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value))
        await tb.pulse("start")
        await tb.pulse("abort")  # the cycle after START: the job is in its check
        res = await tb.wait_done()
        assert res.done == 1 and res.aborted == 1, res
        await ClockCycles(dut.clk_i, 4)
        tb.assert_closed()
        assert tb.sink.empty(), "an output packet for a job aborted in its check"
    await tb.load_weights(w)
    await tb.compute(st.MODE_FORWARD, 2, w=w, x=rand_ints(nrng, 2, (k, 2)))


ENGINE_SOURCES = rtl_sources("bitcycle_engine")
CONFIGS = {
    # PE < SIMD, 32-bit stream, two threshold slots, a register inside the popcount trees
    "p4s8": dict(PE=4, SIMD=8, ACC_BITS=18, DATA_W=32, THR_MAX=2, WMEM_DEPTH=32, AMEM_DEPTH=32, TMEM_DEPTH=8,
                 MAX_CHUNKS=8, POP_REG=1),
    # PE > SIMD, 64-bit stream (two int32 results per word), reads through the BRAM output register
    "p8s4": dict(PE=8, SIMD=4, ACC_BITS=20, DATA_W=64, THR_MAX=3, WMEM_DEPTH=40, AMEM_DEPTH=16, TMEM_DEPTH=4,
                 MAX_CHUNKS=16, READ_REG=1),
}


@pytest.mark.rtl
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_bitcycle_engine(config):
    import rtl_runner

    rtl_runner.run("bitcycle_engine", ENGINE_SOURCES, "test_bitcycle_engine", parameters=CONFIGS[config], tag=config)
