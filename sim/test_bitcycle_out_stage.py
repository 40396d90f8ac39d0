"""cocotb testbench of hw/rtl/bitcycle_out_stage.sv, the engine's output stage, against the golden
stream format (bitcycle.golden.stream: output_stage, pack_output, output_last_bytes).

A job is a matrix of exact results [rows, vectors]; each vector is cut into groups of G values (a
power of two <= LANES; <= THR_LANES for THRESHOLD, the values with thresholds; a vector's last
group is short). A group goes over the grp_valid_i/grp_ready_o handshake (an offer is held
until captured, random gaps between offers, random junk on the group ports when none is offered)
with acc_i = value + off_i (a random off_i per group, so the stage's subtraction wraps) and junk in
the lanes past cnt_i, while the sink applies random backpressure on m_ready_i. Checked:
  * each packet word by word (TDATA, TKEEP, TLAST) against the golden packing, for RES_W 32/16/8
    x OUT_SEL RAW (saturated to acc_bits <= RES_W), CLIP8 (random clip_shift_i) and THRESHOLD
    (THR_MAX thresholds per value on thr_i, in the golden threshold-group layout);
  * saturation: values at and beyond +-2^(acc_bits-1) and at the ACC_BITS extremes, acc_bits up to
    ACC_BITS; one-value vectors, groups of one, vectors ending mid-word, many short vectors;
  * full throughput (no gaps, no backpressure: one step per cycle, no bubble between groups);
  * done_o: low from start_run_i until the packet's last beat is taken, high after;
  * stop_i drops the group in hand: what leaves afterwards is a prefix of the packet, then nothing;
  * close_i (with stop_i, as the engine cuts a job): a prefix, then one marker beat (0, TKEEP
    lane 0, TLAST) unless the packet had ended; a close on every cycle around a job's end;
  * reset in the middle of a job; every disturbed job is followed by a clean one.
The AXI-Stream monitor (sim/axis_monitor.py) watches the output in every test and fails it on a
violation. Seeded by RANDOM_SEED (sim/seeding.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from axis_monitor import AxisMonitor
from seeding import seeded_rng
from bitcycle.golden import stream as st
from bitcycle.hwif.rtl import rtl_sources

OUT_SELS = (st.OUT_RAW, st.OUT_CLIP8, st.OUT_THRESHOLD)
RES_BITS = tuple(st.RES_W_CODES)  # 32, 16, 8
GAP_BP = ((0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.4, 0.4), (0.1, 0.85))  # (offer gap, backpressure)
MAX_CYCLES = 20000
IDLE_END = 12  # cycles without TVALID that end a disturbed job


class _Ports:
    """The output stream under the AXI-Stream names the monitor expects."""

    def __init__(self, dut):
        self.m_tdata, self.m_tkeep, self.m_tlast = dut.m_data_o, dut.m_keep_o, dut.m_last_o
        self.m_tvalid, self.m_tready = dut.m_valid_o, dut.m_ready_i


@dataclass
class Job:
    res_bits: int
    out_sel: int
    acc_bits: int
    clip_shift: int
    group: int              # values per group (the last group of a vector may be short)
    exact: np.ndarray       # [rows, vectors]: the exact results (acc_i - off_i)
    thresholds: np.ndarray  # [rows, THR_MAX]

    def __str__(self):
        return (f"job(res_w={self.res_bits} out_sel={self.out_sel} acc_bits={self.acc_bits} shift={self.clip_shift} "
                f"G={self.group} rows={self.exact.shape[0]} vectors={self.exact.shape[1]})")


def _beat(b) -> str:
    return f"(data={b[0]:#x} keep={b[1]:#x} last={b[2]})"


class OutStage:
    """Drives the DUT's ports, one clock cycle per loop turn (inputs written at the falling edge,
    the handshakes read settled before the rising edge), and holds the golden model."""

    def __init__(self, dut, rng):
        self.dut, self.rng = dut, rng
        self.lanes, self.acc_w, self.data_w = (int(getattr(dut, n).value) for n in ("LANES", "ACC_BITS", "DATA_W"))
        self.thr_max, self.thr_lanes = int(dut.THR_MAX.value), int(dut.THR_LANES.value)
        self.geo = st.Geometry(pe=self.thr_lanes, simd=self.lanes, data_width=self.data_w, thr_max=self.thr_max)
        self.full_keep = (1 << self.data_w // 8) - 1
        self.marker = (0, 0xF, 1)  # one zero int32 lane, TLAST
        self.done = False  # what done_o must show
        self.mon = None

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk_i, 10, unit="ns").start())
        for name in ("start_run_i", "stop_i", "close_i", "acc_bits_i", "out_sel_i", "clip_shift_i", "res_w_i",
                     "grp_valid_i", "acc_i", "off_i", "thr_i", "cnt_i", "vec_last_i", "job_last_i", "m_ready_i"):
            getattr(self.dut, name).value = 0
        await self.reset()
        self.mon = AxisMonitor(_Ports(self.dut), "m", self.dut.clk_i, self.dut.rst_ni, name="m").start()

    async def reset(self):
        """Reset for 2 cycles from a falling edge: the stream is empty and done_o low at once."""
        dut = self.dut
        dut.rst_ni.value = 0
        dut.grp_valid_i.value = 0
        await ClockCycles(dut.clk_i, 2)
        await FallingEdge(dut.clk_i)
        assert int(dut.m_valid_o.value) == 0 and int(dut.done_o.value) == 0, "reset left TVALID or done_o high"
        dut.rst_ni.value = 1
        self.done = False

    # ---- stimulus and golden model -------------------------------------------------------------
    def value(self, acc_bits: int) -> int:
        """An exact result: often at the acc_bits saturation limit or beyond, always in ACC_BITS."""
        rng, lim, top = self.rng, 1 << (acc_bits - 1), 1 << (self.acc_w - 1)
        kind = rng.random()
        if kind < 0.3:
            v = rng.choice((-lim, lim)) + rng.randint(-2, 1)
        elif kind < 0.4:
            v = rng.choice((-top, top - 1))
        elif kind < 0.55:
            v = rng.randint(-top, top - 1)
        else:
            v = rng.randint(-lim, lim - 1)
        return max(-top, min(top - 1, v))

    def threshold(self, acc_bits: int) -> int:
        rng, lim = self.rng, 1 << (acc_bits - 1)
        if rng.random() < 0.1:
            return rng.choice((st.THRESHOLD_PAD, -(1 << 31)))
        return rng.randint(-lim - 1, lim)

    def job(self, res_bits, out_sel, rows=None, vectors=None, acc_bits=None, group=None) -> Job:
        rng = self.rng
        acc_bits = acc_bits or rng.randint(2, min(self.acc_w, res_bits) if out_sel == st.OUT_RAW else self.acc_w)
        widest = self.thr_lanes if out_sel == st.OUT_THRESHOLD else self.lanes  # values with thresholds: PE
        if group is None:
            group = rng.choice([widest] + [1 << i for i in range(widest.bit_length()) if 1 << i <= widest])
        group = min(group, widest)
        rows = rows or rng.choice((1, rng.randint(1, group), rng.randint(1, 3 * self.lanes)))
        vectors = vectors or rng.randint(1, 4)
        exact = np.array([[self.value(acc_bits) for _ in range(vectors)] for _ in range(rows)], dtype=np.int64)
        thr = np.array([[self.threshold(acc_bits) for _ in range(self.thr_max)] for _ in range(rows)], dtype=np.int64)
        shift = rng.choice((0, rng.randint(0, min(acc_bits, 31)), rng.randint(0, 31)))  # (a 5-bit port)
        return Job(res_bits, out_sel, acc_bits, shift, group, exact, thr)

    def groups(self, job: Job) -> list[dict]:
        """The job's groups as port values, vector by vector."""
        rng, mask = self.rng, (1 << self.acc_w) - 1
        rows, vectors = job.exact.shape
        thr_bits = len(self.dut.thr_i)
        out = []
        for v in range(vectors):
            for lo in range(0, rows, job.group):
                cnt = min(job.group, rows - lo)
                off = rng.getrandbits(self.acc_w)
                acc = 0
                for o in range(self.lanes):
                    lane = (int(job.exact[lo + o, v]) + off) & mask if o < cnt else rng.getrandbits(self.acc_w)
                    acc |= lane << (o * self.acc_w)
                if job.out_sel == st.OUT_THRESHOLD:  # the group's channels, in the golden threshold-group layout
                    words = st.pack_thresholds(job.thresholds[lo:lo + cnt], self.geo)
                    thr = sum(int(w) << (i * self.data_w) for i, w in enumerate(words)) & ((1 << thr_bits) - 1)
                else:
                    thr = rng.getrandbits(thr_bits)
                end = lo + cnt == rows
                out.append(dict(acc=acc, off=off, thr=thr, cnt=cnt,
                                vec_last=int(end), job_last=int(end and v == vectors - 1)))
        return out

    def steps(self, job: Job) -> int:
        """Cycles the serializer needs for the job (a group takes ceil(cnt / per) steps)."""
        rows, vectors = job.exact.shape
        per = self.data_w // job.res_bits
        return vectors * sum(-(-min(job.group, rows - lo) // per) for lo in range(0, rows, job.group))

    def expected(self, job: Job) -> list[tuple[int, int, int]]:
        """The packet as (TDATA, TKEEP, TLAST) beats, from the golden output stage and packing."""
        result = st.output_stage(job.exact, job.acc_bits, job.out_sel, job.clip_shift, job.thresholds)
        words = st.pack_output(result, st.MODE_FORWARD, self.geo, job.res_bits)
        rows, vectors = job.exact.shape
        last_keep = (1 << st.output_last_bytes(st.MODE_FORWARD, self.geo, rows, 1, vectors, job.res_bits)) - 1
        n = len(words)
        return [(int(w), last_keep if i == n - 1 else self.full_keep, int(i == n - 1)) for i, w in enumerate(words)]

    # ---- driving -------------------------------------------------------------------------------
    def _offer(self, grp):
        dut, rng = self.dut, self.rng
        if grp is None:  # junk that must not be captured
            grp = dict(acc=rng.getrandbits(len(dut.acc_i)), off=rng.getrandbits(self.acc_w),
                       thr=rng.getrandbits(len(dut.thr_i)), cnt=rng.getrandbits(len(dut.cnt_i)),
                       vec_last=rng.getrandbits(1), job_last=rng.getrandbits(1))
            dut.grp_valid_i.value = 0
        else:
            dut.grp_valid_i.value = 1
        dut.acc_i.value, dut.off_i.value, dut.thr_i.value = grp["acc"], grp["off"], grp["thr"]
        dut.cnt_i.value, dut.vec_last_i.value, dut.job_last_i.value = grp["cnt"], grp["vec_last"], grp["job_last"]

    async def start_job(self, job: Job):
        dut = self.dut
        await FallingEdge(dut.clk_i)
        dut.acc_bits_i.value, dut.out_sel_i.value = job.acc_bits, job.out_sel
        dut.clip_shift_i.value, dut.res_w_i.value = job.clip_shift, st.res_w_code(job.res_bits)
        dut.start_run_i.value = 1
        await FallingEdge(dut.clk_i)
        dut.start_run_i.value = 0
        self.done = False

    async def run(self, job: Job, gap=0.0, bp=0.0, event=None, at=-1):
        """Hand over the job's groups and take its packet; ``event`` ('stop', 'close' or 'reset') at
        loop cycle ``at`` ends the hand-over. Returns the beats taken and the cycle of the last."""
        dut, rng = self.dut, self.rng
        await self.start_job(job)
        pending, offer, beats, idle, last_cycle = self.groups(job), None, [], 0, -1
        most = len(self.expected(job)) + 1  # the packet, and a marker beat after a cut
        for cycle in range(MAX_CYCLES):
            await FallingEdge(dut.clk_i)
            assert int(dut.done_o.value) == self.done, f"{job} cycle {cycle}: done_o should be {int(self.done)}"
            dut.stop_i.value, dut.close_i.value = 0, 0
            if cycle == at:
                pending, idle = [], 0
                if event == "reset":
                    offer = None
                    await self.reset()
                else:  # the offer stays up this cycle: a capture now is dropped with the group in hand
                    dut.stop_i.value, dut.close_i.value = 1, int(event == "close")
            if offer is None and pending and rng.random() >= gap:
                offer = pending.pop(0)
            self._offer(offer)
            ready = int(rng.random() >= bp)
            dut.m_ready_i.value = ready
            await ReadOnly()
            if offer is not None and (int(dut.grp_ready_o.value) or cycle == at):
                offer = None
            if int(dut.m_valid_o.value):
                idle = 0
                if ready:
                    beats.append((int(dut.m_data_o.value), int(dut.m_keep_o.value), int(dut.m_last_o.value)))
                    self.done, last_cycle = self.done or bool(beats[-1][2]), cycle
                    assert len(beats) <= most, f"{job}: {len(beats)} beats, the packet has {most - 1}"
            else:
                idle += 1
            if (event is None and self.done) or (event is not None and cycle > at and idle >= IDLE_END):
                break
        else:
            raise AssertionError(f"{job}: no end after {MAX_CYCLES} cycles ({len(beats)} beats taken)")
        await FallingEdge(dut.clk_i)
        dut.stop_i.value, dut.close_i.value, dut.grp_valid_i.value = 0, 0, 0
        for _ in range(4):  # nothing more leaves, done_o holds
            dut.m_ready_i.value = rng.getrandbits(1)
            await ReadOnly()
            assert int(dut.m_valid_o.value) == 0, f"{job}: a beat after the packet's end"
            assert int(dut.done_o.value) == self.done, f"{job}: done_o should be {int(self.done)}"
            await FallingEdge(dut.clk_i)
        return beats, last_cycle

    async def whole(self, job: Job, gap=0.0, bp=0.0):
        """A job undisturbed: its packet must be the golden one, beat for beat."""
        beats, last_cycle = await self.run(job, gap, bp)
        check_packet(beats, self.expected(job), str(job))
        if gap == 0 and bp == 0:
            steps = self.steps(job)
            # capture in cycle 0, one step per cycle from cycle 1, 4 stages to TVALID, taken a cycle later
            assert last_cycle <= steps + 4, f"{job}: last beat in cycle {last_cycle} for {steps} steps (a bubble)"

    async def disturbed(self, job: Job, event: str, at: int, gap=0.0, bp=0.0):
        """A job stopped, closed or reset at cycle ``at``: a prefix of its packet, then the marker
        for a close of an open packet, then nothing."""
        beats, _ = await self.run(job, gap, bp, event, at)
        want = self.expected(job)
        n = next((i for i, (g, w) in enumerate(zip(beats, want)) if g != w), min(len(beats), len(want)))
        rest = beats[n:]
        tail = [self.marker] if event == "close" and n < len(want) else []
        assert rest == tail, (f"{job} {event} at cycle {at}: after {n} beats of the packet ({len(want)}) got "
                              f"{[_beat(b) for b in rest]}, expected {[_beat(b) for b in tail]}"
                              + (f" (the packet's beat {n} is {_beat(want[n])})" if n < len(want) else ""))
        return n

    def finish(self):
        assert self.mon.beats > 0 and not self.mon.violations, self.mon.violations


def check_packet(got, want, what: str):
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{what}: beat {i} of {len(want)} is {_beat(g)}, expected {_beat(w)}"
    assert len(got) == len(want), f"{what}: {len(got)} beats, expected {len(want)}"


async def _bench(dut) -> OutStage:
    tb = OutStage(dut, seeded_rng())
    await tb.start()
    return tb


@cocotb.test()
async def every_format(dut):
    """RES_W x OUT_SEL, random shapes and values, random gaps and backpressure; acc_bits = ACC_BITS."""
    tb = await _bench(dut)
    for res_bits in RES_BITS:
        for out_sel in OUT_SELS:
            for gap, bp in tb.rng.sample(GAP_BP, 3):
                await tb.whole(tb.job(res_bits, out_sel), gap, bp)
            if out_sel != st.OUT_RAW or tb.acc_w <= res_bits:
                await tb.whole(tb.job(res_bits, out_sel, acc_bits=tb.acc_w), *tb.rng.choice(GAP_BP))
    tb.finish()


@cocotb.test()
async def edge_shapes(dut):
    """One-value vectors, groups of one, vectors ending one short of / one past a word, many short
    vectors; each at full throughput and under gaps and backpressure."""
    tb = await _bench(dut)
    rng = tb.rng
    for res_bits in RES_BITS:
        per = tb.data_w // res_bits
        out_sel = rng.choice(OUT_SELS)
        shapes = [dict(rows=1, vectors=rng.randint(3, 8)), dict(rows=rng.randint(1, 9), group=1),
                  dict(rows=max(1, 2 * per - 1)), dict(rows=2 * per + 1), dict(rows=rng.randint(1, 3), vectors=20)]
        for shape in shapes:
            job = tb.job(res_bits, out_sel, **shape)
            await tb.whole(job)
            await tb.whole(job, *rng.choice(GAP_BP[1:]))
    tb.finish()


@cocotb.test()
async def stop_close_reset(dut):
    """Random jobs stopped, closed (cut) or reset at a random cycle, each followed by a clean job;
    a close before the first group and one after the packet's end."""
    tb = await _bench(dut)
    rng = tb.rng
    for i in range(18):
        job = tb.job(rng.choice(RES_BITS), rng.choice(OUT_SELS))
        gap, bp = rng.choice(GAP_BP)
        event = ("stop", "close", "reset")[i % 3]
        await tb.disturbed(job, event, rng.randint(0, int(tb.steps(job) / (1 - bp)) + 8), gap, bp)
        await tb.whole(tb.job(rng.choice(RES_BITS), rng.choice(OUT_SELS)), *rng.choice(GAP_BP))
    job = tb.job(32, st.OUT_RAW, rows=3, vectors=2)
    assert await tb.disturbed(job, "close", 0) == 0  # nothing captured: the packet is the marker alone
    assert await tb.disturbed(job, "close", tb.steps(job) + 20) == len(tb.expected(job))  # ended: no marker
    await tb.whole(job)
    tb.finish()


@cocotb.test()
async def close_on_every_cycle(dut):
    """A small job cut on each cycle from its first group to past its last beat, at full speed and
    under backpressure: whatever was on offer leaves, then the marker iff the packet was open."""
    tb = await _bench(dut)
    for bp in (0.0, 0.5):
        for res_bits in (32, 8):
            job = tb.job(res_bits, st.OUT_RAW, rows=tb.data_w // res_bits + 1, vectors=2, acc_bits=8)
            for at in range(int(tb.steps(job) / (1 - bp)) + 10):
                await tb.disturbed(job, "close", at, bp=bp)
            await tb.whole(job)
    tb.finish()


@pytest.mark.rtl
@pytest.mark.parametrize("lanes,acc_bits,data_w,thr_max,thr_lanes",
                         [(8, 20, 32, 2, 4), (16, 24, 64, 1, 16), (4, 32, 64, 3, 2)])  # the last: groups < a word
def test_bitcycle_out_stage(lanes, acc_bits, data_w, thr_max, thr_lanes):
    import rtl_runner

    rtl_runner.run("bitcycle_out_stage", rtl_sources("bitcycle_out_stage"), "test_bitcycle_out_stage",
                   parameters={"LANES": lanes, "ACC_BITS": acc_bits, "DATA_W": data_w, "THR_MAX": thr_max,
                               "THR_LANES": thr_lanes},
                   tag=f"l{lanes}a{acc_bits}d{data_w}t{thr_max}x{thr_lanes}")
