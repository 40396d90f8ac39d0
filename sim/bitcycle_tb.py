"""Shared cocotb driver of the BitCycle engine: streams via cocotbext-axi, configuration either on
the engine's ports (``bitcycle_engine``) or through AXI4-Lite registers (``bitcycle_top``).

Everything on the wire comes from ``bitcycle.golden.stream``: the same pack/unpack functions the
PYNQ driver uses.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from axis_monitor import AxisMonitor
from bitcycle.golden import stream as st
from bitcycle.hwif import regmap

ERR_BITS = [name.lower() for name in regmap.ERROR_BITS]  # bit i of the ERROR register, generated from the .rdl


def err_mask(*names: str) -> int:
    return sum(1 << ERR_BITS.index(n) for n in names)


@dataclass
class JobResult:
    done: int
    busy: int
    error: int
    cycles: int
    aborted: int = 0
    words: list[int] = field(default_factory=list)


def random_pause(rng: random.Random, prob: float):
    """Pause generator for cocotbext-axi: paused with probability ``prob`` per cycle."""
    while True:
        yield rng.random() < prob


class EngineTB:
    def __init__(self, dut, regs: bool = False):
        self.dut = dut
        self.regs = regs  # True: configuration through AXI4-Lite (bitcycle_top)
        self.last_keep: list[int] = []  # TKEEP of the last output beat received
        self.geo = st.Geometry(pe=int(dut.PE.value), simd=int(dut.SIMD.value),
                               data_width=int(dut.DATA_W.value), thr_max=int(dut.THR_MAX.value))
        self.acc_bits_max = int(dut.ACC_BITS.value)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk_i, dut.rst_ni,
                                      reset_active_level=False)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk_i, dut.rst_ni,
                                  reset_active_level=False)
        for bfm in (self.source, self.sink):
            bfm.log.setLevel(logging.WARNING)  # one INFO line per frame otherwise
        # protocol monitors on both streams: a violation fails the test at once
        self.mon_in = AxisMonitor(dut, "s_axis", dut.clk_i, dut.rst_ni, name="s_axis")
        self.mon_out = AxisMonitor(dut, "m_axis", dut.clk_i, dut.rst_ni, name="m_axis")
        self.axil = None
        if regs:
            from cocotbext.axi import AxiLiteBus, AxiLiteMaster

            self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk_i, dut.rst_ni,
                                      reset_active_level=False)

    async def start_clock_and_reset(self):
        cocotb.start_soon(Clock(self.dut.clk_i, 10, unit="ns").start())
        self.mon_in.start()
        self.mon_out.start()
        await self.reset()

    async def reset(self, cycles: int = 3):
        dut = self.dut
        dut.rst_ni.value = 0
        if not self.regs:
            dut.start_i.value = 0
            dut.abort_i.value = 0
        await ClockCycles(dut.clk_i, cycles)
        dut.rst_ni.value = 1
        await ClockCycles(dut.clk_i, 2)

    def set_gaps(self, rng: random.Random, gap: float, backpressure: float):
        if gap > 0:
            self.source.set_pause_generator(random_pause(rng, gap))
        else:
            self.source.clear_pause_generator()
            self.source.pause = False  # clearing the generator keeps its last value
        if backpressure > 0:
            self.sink.set_pause_generator(random_pause(rng, backpressure))
        else:
            self.sink.clear_pause_generator()
            self.sink.pause = False

    # -- configuration ---------------------------------------------------------------------------
    async def write_reg(self, name: str, value: int):
        await self.axil.write_dword(regmap.ADDRESSES[name], value)

    async def read_reg(self, name: str) -> int:
        return await self.axil.read_dword(regmap.ADDRESSES[name])

    async def configure(self, mode, bits=1, m=1, k=1, n=1, acc_bits=None, out_sel=0, clip_shift=0, res_w=0):
        """res_w: the OUT_CFG.RES_W code (st.res_w_code(bits per result))."""
        acc_bits = self.acc_bits_max if acc_bits is None else acc_bits
        if self.regs:
            await self.write_reg("MODE", mode)
            await self.write_reg("BITS", bits)
            await self.write_reg("M", m)
            await self.write_reg("K", k)
            await self.write_reg("N", n)
            await self.write_reg("ACC_BITS", acc_bits)
            await self.write_reg("OUT_CFG", regmap.pack("OUT_CFG", OUT_SEL=out_sel, CLIP_SHIFT=clip_shift, RES_W=res_w))
            return
        dut = self.dut
        await FallingEdge(dut.clk_i)
        dut.cfg_mode_i.value = mode
        dut.cfg_bits_i.value = bits
        dut.cfg_m_i.value = m
        dut.cfg_k_i.value = k
        dut.cfg_n_i.value = n
        dut.cfg_acc_bits_i.value = acc_bits
        dut.cfg_out_sel_i.value = out_sel
        dut.cfg_clip_shift_i.value = clip_shift
        dut.cfg_res_w_i.value = res_w

    async def pulse(self, name: str):
        if self.regs:
            await self.write_reg("CTRL", 1 << regmap.FIELDS["CTRL"][name.upper()][0])
            return
        dut = self.dut
        await FallingEdge(dut.clk_i)
        getattr(dut, f"{name.lower()}_i").value = 1
        await FallingEdge(dut.clk_i)
        getattr(dut, f"{name.lower()}_i").value = 0

    async def status(self) -> JobResult:
        if self.regs:
            s = await self.read_reg("STATUS")
            return JobResult(done=(s >> 1) & 1, busy=s & 1, error=await self.read_reg("ERROR"),
                             cycles=await self.read_reg("CYCLES"), aborted=(s >> 2) & 1)
        dut = self.dut
        return JobResult(done=int(dut.done_o.value), busy=int(dut.busy_o.value), error=int(dut.error_o.value),
                         cycles=int(dut.cycles_o.value), aborted=int(dut.aborted_o.value))

    async def wait_done(self, timeout_cycles: int = 200_000) -> JobResult:
        timeout_cycles = int(os.environ.get("BITCYCLE_TB_TIMEOUT", timeout_cycles))
        for _ in range(timeout_cycles // 8 + 1):
            res = await self.status()
            if not res.busy:
                return res
            await ClockCycles(self.dut.clk_i, 8)
        raise AssertionError(f"engine still busy: deadlock; {self.internals()}")

    def internals(self) -> str:
        """Key internal state for a failure message (engine only; names of bitcycle_engine)."""
        root = self.dut if not self.regs else getattr(self.dut, "u_engine", None)
        names = ["job_q", "in_q", "in_open_q", "marker_q", "c_active_q", "full_q", "wbank_q", "rbank_q", "waddr_q", "wvec_q", "rvec_q",
                 "og_q", "rc_q", "pl_q", "hold_valid_q", "m_valid_q", "out_done_q", "m_axis_tready", "s_axis_tvalid"]
        vals = []
        for nm in names:
            try:
                vals.append(f"{nm}={int(getattr(root, nm).value)}")
            except Exception:  # noqa: BLE001 - not visible in this simulator
                pass
        return " ".join(vals)

    # -- whole jobs ------------------------------------------------------------------------------
    async def job(self, mode, words, bits=1, m=1, k=1, n=1, acc_bits=None, out_sel=0, clip_shift=0,
                  expect_output=True, timeout_cycles=400_000, res_w=0) -> JobResult:
        await self.configure(mode, bits, m, k, n, acc_bits, out_sel, clip_shift, res_w)
        await self.pulse("start")
        if len(words):
            await self.source.send(AxiStreamFrame(st.words_to_bytes(words, self.geo)))
        res = await self.wait_done(timeout_cycles)
        cfg_ok = res.error & ~err_mask("stream_long", "stream_short") == 0
        if mode in st.COMPUTE_MODES and res.done and cfg_ok and (expect_output or res.aborted):
            # every compute job that ran sends one packet; a cut one ends with a marker beat
            res.words = await self.recv_words()
        self.assert_closed()
        return res

    async def recv_words(self, timeout_ns: int = 2000) -> list[int]:
        frame = await with_timeout(self.sink.recv(compact=False), timeout_ns, "ns")
        keep = list(frame.tkeep) if frame.tkeep else [1] * len(frame.tdata)
        self.last_keep = keep[-(self.geo.data_width // 8):]
        data = bytes(b for b, k in zip(frame.tdata, keep) if k)  # the bytes TKEEP marks
        return st.bytes_to_words(data, self.geo).tolist()

    def assert_closed(self):
        """After a job: both streams between packets, nothing left in the source or the sink."""
        assert not self.mon_out.open, "m_axis: the job ended with its output packet open (no TLAST)"
        assert not self.mon_in.open, "s_axis: the job ended with its input packet open"
        assert self.sink.empty(), "m_axis: more than one packet for one job"
        assert self.source.empty() and self.source.idle(), "s_axis: input words left for the next job"

    async def load_weights(self, w):
        m, k = w.shape
        res = await self.job(st.MODE_LOAD_WEIGHTS, st.pack_binary_tiles(w, self.geo), m=m, k=k)
        assert res.done == 1 and res.error == 0, f"weight load failed: error={res.error:#x}"

    async def load_thresholds(self, thr):
        res = await self.job(st.MODE_LOAD_THRESHOLDS, st.pack_thresholds(thr, self.geo), m=thr.shape[0])
        assert res.done == 1 and res.error == 0, f"threshold load failed: error={res.error:#x}"

    async def compute(self, mode, bits, *, w=None, x=None, dy=None, sx=None, acc_bits=None, out_sel=0,
                      clip_shift=0, thresholds=None, res_bits=32):
        """Run one compute job and check it bit-exact against bitcycle.golden.stream.engine_job
        (results ``res_bits`` wide in the stream; TKEEP of the last beat = its real bytes)."""
        acc_bits = self.acc_bits_max if acc_bits is None else acc_bits
        if mode == st.MODE_FORWARD:
            m, k = w.shape
            n = x.shape[1]
            words = st.pack_input(mode, self.geo, bits, ints=x)
            expected = st.engine_job(mode, bits, acc_bits, ints=x, weights=w, out_sel=out_sel,
                                     clip_shift=clip_shift, thresholds=thresholds)
        elif mode == st.MODE_BACKWARD_DATA:
            m, k = w.shape
            n = dy.shape[1]
            words = st.pack_input(mode, self.geo, bits, ints=dy)
            expected = st.engine_job(mode, bits, acc_bits, ints=dy, weights=w, out_sel=out_sel, clip_shift=clip_shift)
        else:
            m, n = dy.shape
            k = sx.shape[0]
            words = st.pack_input(mode, self.geo, bits, ints=dy, binary=sx)
            expected = st.engine_job(mode, bits, acc_bits, binary=sx, ints=dy, out_sel=out_sel, clip_shift=clip_shift)
        assert len(words) == st.input_words(mode, self.geo, m, k, n, bits)
        res = await self.job(mode, words, bits, m, k, n, acc_bits, out_sel, clip_shift, res_w=st.res_w_code(res_bits))
        assert res.done == 1 and res.error == 0, f"mode {mode} bits {bits} [{m},{k},{n}]: error={res.error:#x}"
        got = st.unpack_output(res.words, mode, self.geo, m, k, n, res_bits)
        nb = self.geo.data_width // 8
        real = st.output_last_bytes(mode, self.geo, m, k, n, res_bits)
        if self.last_keep and self.last_keep != [1] * real + [0] * (nb - real):
            raise AssertionError(f"res_bits {res_bits} [{m},{k},{n}]: last-beat TKEEP {self.last_keep}, "
                                 f"expected {real} real bytes")
        if not np.array_equal(got, expected):
            bad = np.argwhere(got != expected)[:5].tolist()
            raise AssertionError(f"mode {mode} bits {bits} [{m},{k},{n}] acc_bits {acc_bits} out_sel {out_sel} "
                                 f"res_bits {res_bits}: "
                                 f"mismatch at {bad}\n got {got.tolist()}\n expected {expected.tolist()}")
        return res


def result_words(result: np.ndarray, mode: int, geo: st.Geometry, res_bits: int = 32) -> list[int]:
    """The golden output packet of a job (stream.pack_output), for prefix checks."""
    return [int(w) for w in st.pack_output(result, mode, geo, res_bits)]


def rand_binary(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)


def rand_ints(rng: np.random.Generator, bits: int, shape, extremes: bool = False) -> np.ndarray:
    if bits == 1:
        return rng.choice(np.array([-1, 1]), size=shape).astype(np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if extremes:
        return rng.choice(np.array([lo, hi]), size=shape).astype(np.int64)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def max_len(bits: int, acc_bits: int) -> int:
    """Longest reduction the engine accepts at ``bits`` without the overflow error."""
    worst = 1 if bits == 1 else 1 << (bits - 1)
    return ((1 << (acc_bits - 1)) - 1) // worst
