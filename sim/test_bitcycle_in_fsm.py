"""cocotb testbench of hw/rtl/bitcycle_in_fsm.sv, the engine's input FSM, against a cycle model.

Jobs follow the golden stream layout (bitcycle.golden.stream) at random geometries: weight and
threshold loads (tiles only), forward and backward-data (vectors only), backward-weight (tiles,
then vectors). The FSM gets the job's geometry as bitcycle_cfg_check computes it (fields a mode
does not use are random), and the packet's expected length is st.input_words. The stream has random
TVALID gaps; a beat on offer stays on offer, so the next packet's first word waits while a job ends.
A consumer releases each full vector bank in bank order after a random delay (rd_release_i /
rd_bank_i), as the issue sequencer does.

Every cycle, every output is compared with the model:
  * s_ready_o: high for tiles and while draining; for vectors only while the bank being written is
    empty (no word lost, no full bank overwritten); low when idle, done or cut;
  * each tile write (tile_o, sub_o) and vector write (vbuf_waddr_o = {bank, word}, banks
    alternating) in packet order; a job's writes also add up to st.input_words;
  * full_o: set after a vector's last word, cleared the cycle after the release's cycle;
  * done_o, draining_o, err_short_o / err_long_o (on the deciding beat only; none if exact).
Endings: exact; short (err_short_o, and the FSM stops taking words at once, by itself); long
(err_long_o on the last expected word, the rest drained with s_ready_o high, done at TLAST);
abort_run_i anywhere (a begun packet drains to its TLAST while the engine closes, and not a word of
the next packet; nothing if none had begun or it had ended); a second abort_i during close_i (stops
the drain); reset mid-packet. Each is followed by more jobs. Corners: one-word packets, one-word
tiles and vectors, one vector, many vectors, the most words per tile and per vector the counters
hold. Zero tiles, vectors or words per vector do not occur: the engine refuses those shapes
(bitcycle_cfg_check's BAD_SHAPE) and bits >= 1. The seed is logged; RANDOM_SEED=... reproduces a run.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from bitcycle.golden import stream as st
from bitcycle.hwif.rtl import rtl_sources
from seeding import seeded_rng

TILE_MODES = (st.MODE_LOAD_WEIGHTS, st.MODE_LOAD_THRESHOLDS, st.MODE_BACKWARD_WEIGHT)
MODES = (*st.COMPUTE_MODES, st.MODE_LOAD_WEIGHTS, st.MODE_LOAD_THRESHOLDS)
IDLE, DATA, DRAIN, DONE = "idle", "data", "drain", "done"
CONTROLS = {"start": "start_run_i", "abort_run": "abort_run_i", "job_end": "job_end_i", "close": "close_i",
            "abort": "abort_i", "release": "rd_release_i", "rel_bank": "rd_bank_i", "valid": "s_valid_i",
            "last": "s_last_i"}
OUTPUTS = {"s_ready": "s_ready_o", "full": "full_o", "done": "done_o", "draining": "draining_o",
           "tile_we": "tile_we_o", "vbuf_we": "vbuf_we_o", "err_short": "err_short_o", "err_long": "err_long_o",
           "tile": "tile_o", "sub": "sub_o", "waddr": "vbuf_waddr_o"}
JOB_CYCLES = 20000  # a job taking longer has hung


def _ceil(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class Job:
    mode: int
    tiles: int      # load_tiles_i
    per_tile: int   # words per tile (last_sub_i + 1)
    vec_words: int  # vec_words_i
    n_vec: int      # n_vec_i
    length: int     # st.input_words: the packet's expected length

    @property
    def tiles_in(self):
        return self.mode in TILE_MODES

    @property
    def vec_in(self):
        return self.mode in st.COMPUTE_MODES

    @property
    def tile_total(self):
        return self.tiles * self.per_tile if self.tiles_in else 0

    def word(self, i):
        """Where word i of the packet goes: ("tile", (tile, sub)) or ("vec", (bank, word))."""
        if i < self.tile_total:
            return "tile", divmod(i, self.per_tile)
        v, w = divmod(i - self.tile_total, self.vec_words)
        return "vec", (v % 2, w)


def packet(n):
    """The TLAST flags of an n-word packet."""
    return [0] * (n - 1) + [1] if n else []


def golden_job(mode, geo, m, k, n, bits):
    """The FSM's view of a job (bitcycle_cfg_check's geometry), its length cross-checked with golden."""
    pe, simd = geo.pe, geo.simd
    tiles = {st.MODE_LOAD_WEIGHTS: _ceil(m, pe) * _ceil(k, simd), st.MODE_LOAD_THRESHOLDS: _ceil(m, pe),
             st.MODE_BACKWARD_WEIGHT: _ceil(k, pe) * _ceil(n, simd)}.get(mode, 0)
    per_tile = geo.threshold_words if mode == st.MODE_LOAD_THRESHOLDS else geo.tile_words
    n_red = {st.MODE_FORWARD: _ceil(k, simd), st.MODE_BACKWARD_DATA: _ceil(m, pe),
             st.MODE_BACKWARD_WEIGHT: _ceil(n, simd)}.get(mode, 0)
    n_vec = m if mode == st.MODE_BACKWARD_WEIGHT else (n if mode in st.COMPUTE_MODES else 0)
    job = Job(mode, tiles, per_tile, bits * n_red, n_vec, st.input_words(mode, geo, m, k, n, bits))
    assert job.tile_total + job.vec_words * job.n_vec == job.length, (job, geo, m, k, n, bits)
    return job


def random_job(rng, sub_w, bank_aw, max_words=300):
    while True:
        dw = rng.choice((32, 64))
        pe, simd = (rng.choice([p for p in (1, 2, 4, 8, 16, 32) if p <= dw]) for _ in range(2))
        geo = st.Geometry(pe=pe, simd=simd, data_width=dw, thr_max=rng.randint(1, 3))
        m, k, n = (rng.randint(1, rng.choice((2, 8, 24, 64))) for _ in range(3))
        job = golden_job(rng.choice(MODES), geo, m, k, n, rng.choice((1, 1, 2, 3, 4, 8, 16)))
        if job.per_tile <= 1 << sub_w and job.vec_words <= 1 << bank_aw and job.length <= max_words:
            return job


class Model:
    """The FSM's specified behaviour, one clock at a time: phase, words taken, bank flags."""

    def __init__(self, bank_aw):
        self.bank_aw = bank_aw
        self.job = None
        self.reset()

    def reset(self):
        self.phase, self.i, self.full, self.open, self.rel, self.end_q = IDLE, 0, [0, 0], False, None, False

    def ready(self):
        if self.phase == DATA:
            kind, (bank, _) = self.job.word(self.i)
            return kind == "tile" or not self.full[bank]
        return self.phase == DRAIN

    def cycle(self, inp):
        """Expected outputs this cycle (None: not compared) and the state after the rising edge."""
        if inp["rst"]:
            self.reset()
        out = dict(s_ready=int(self.ready()), full=self.full[0] | self.full[1] << 1, done=int(self.phase == DONE),
                   draining=int(self.phase == DRAIN), tile_we=0, vbuf_we=0, err_short=0, err_long=0,
                   tile=None, sub=None, waddr=None)
        if inp["rst"]:
            return out
        beat, last = inp["valid"] and out["s_ready"], inp["last"]
        nxt, full = self.phase, list(self.full)
        if self.rel is not None:
            full[self.rel] = 0
        if beat and self.phase == DATA:
            kind, (a, b) = self.job.word(self.i)
            if kind == "tile":
                out.update(tile_we=1, tile=a, sub=b)
            else:
                out.update(vbuf_we=1, waddr=a << self.bank_aw | b)
                full[a] |= b == self.job.vec_words - 1
            end = self.i == self.job.length - 1
            out.update(err_short=int(last and not end), err_long=int(end and not last))
            self.i += 1
            if end:
                nxt = DONE if last else DRAIN
            elif last:  # short: the FSM stops by itself, the banks empty
                nxt, full = IDLE, [0, 0]
        elif beat and self.phase == DRAIN and last:
            nxt = IDLE if inp["close"] else DONE
        open_d = (not last) if beat else self.open
        if inp["start"]:
            nxt, self.i, full = DATA, 0, [0, 0]
        if self.end_q:
            nxt = IDLE
        if inp["abort_run"]:  # a begun packet drains; idle (the engine's check), a waiting first word begins one
            nxt, full = (DRAIN if open_d or (self.phase == IDLE and inp["valid"]) else IDLE), [0, 0]
        if inp["close"] and inp["abort"]:
            nxt, open_d = IDLE, False
        self.phase, self.full, self.open = nxt, full, open_d
        self.rel = inp["rel_bank"] if inp["release"] else None
        self.end_q = bool(inp["job_end"])
        return out


class Bench:
    """Drives the FSM one clock at a time (inputs at the falling edge) and checks it against Model."""

    def __init__(self, dut, rng):
        self.dut, self.rng = dut, rng
        self.sub_w, self.bank_aw = len(dut.sub_o), len(dut.vbuf_waddr_o) - 1
        self.model = Model(self.bank_aw)
        self.queue = deque()  # TLAST flags of the beats still to send, packet after packet
        self.offered = False
        self.gap, self.max_delay = 0.0, 0
        self.consume, self.rbank, self.delay, self.released = False, 0, None, 0
        self.taken = self.writes = self.cycles = 0
        self.cov = Counter()
        self.geometry = dict.fromkeys(("tiles_in_i", "vec_in_i", "load_tiles_i", "last_sub_i", "vec_words_i",
                                       "n_vec_i"), 0)  # inputs to drive at the next falling edge

    async def init(self):
        cocotb.start_soon(Clock(self.dut.clk_i, 10, unit="ns").start())
        for _ in range(2):
            await self.cycle(rst=1)

    async def cycle(self, **ctl):
        """One clock with the control inputs in ctl (the rest 0), the stream and the consumer."""
        dut, rng = self.dut, self.rng
        await FallingEdge(dut.clk_i)
        inp = dict.fromkeys((*CONTROLS, "rst"), 0) | ctl
        if self.consume and int(dut.full_o.value) >> self.rbank & 1:
            self.delay = rng.randint(0, self.max_delay) if self.delay is None else self.delay
            if self.delay == 0:
                inp.update(release=1, rel_bank=self.rbank)
                self.rbank, self.delay, self.released = self.rbank ^ 1, None, self.released + 1
            else:
                self.delay -= 1
        self.offered = bool(self.queue) and (self.offered or rng.random() >= self.gap)
        inp.update(valid=int(self.offered), last=self.queue[0] if self.offered else 0)
        for key, name in CONTROLS.items():
            getattr(dut, name).value = inp[key]
        for name, value in self.geometry.items():
            getattr(dut, name).value = value
        self.geometry = {}
        dut.rst_ni.value = 1 - inp["rst"]
        await ReadOnly()
        self.cycles += 1
        state = (self.model.phase, self.model.i, self.model.full)
        exp = self.model.cycle(inp)
        got = {key: int(getattr(dut, name).value) for key, name in OUTPUTS.items()}
        bad = {k: (got[k], v) for k, v in exp.items() if v is not None and got[k] != v}
        assert not bad, (f"cycle {self.cycles}: (got, expected) {bad}; inputs {inp}; model (phase, word, full) {state}; "
                         f"{self.model.job}")
        assert not (got["vbuf_we"] and got["full"] >> (got["waddr"] >> self.bank_aw) & 1), "a full bank overwritten"
        self.writes += got["tile_we"] + got["vbuf_we"]
        self.cov["full_stall"] += self.offered and state[0] == DATA and not got["s_ready"]
        if self.offered and got["s_ready"]:
            self.queue.popleft()
            self.taken += 1
            self.offered = False
        return got

    def set_geometry(self, job):
        """The job's geometry, driven from the next cycle on (random in the fields its mode does not
        use: the FSM must ignore them)."""
        rng = self.rng
        self.geometry = dict(tiles_in_i=int(job.tiles_in), vec_in_i=int(job.vec_in),
                             load_tiles_i=job.tiles if job.tiles_in else rng.getrandbits(8),
                             last_sub_i=job.per_tile - 1 if job.tiles_in else rng.getrandbits(self.sub_w),
                             vec_words_i=job.vec_words if job.vec_in else rng.getrandbits(6),
                             n_vec_i=job.n_vec if job.vec_in else rng.getrandbits(6))

    def packet_length(self, job, ending):
        if ending == "short":
            return self.rng.randint(1, job.length - 1)
        if ending == "long" or (ending.startswith("abort") and self.rng.random() < 0.4):
            return job.length + self.rng.randint(1, 4)
        return job.length

    async def run_jobs(self, plan):
        """plan: (job, ending, options of run_job) per job. A packet joins the stream when the job
        before it reaches its end, so its first word waits on the port while that job ends."""
        plens = [opts.pop("plen", None) or self.packet_length(job, ending) for job, ending, opts in plan]
        plens = [0 if opts.get("late") else n for n, (_, _, opts) in zip(plens, plan)] + [0]
        self.queue.extend(packet(plens[0]))
        for i, (job, ending, opts) in enumerate(plan):
            await self.run_job(job, ending, plens[i] or self.packet_length(job, ending), plens[i + 1], **opts)

    async def run_job(self, job, ending, plen, next_plen, at=None, gap=None, stop_at=None, late=False):
        """One job from the engine's side: geometry, start, the packet, then its ending:
        exact | short | long (job_end after done), abort | abort2 (abort_run_i after ``at`` words,
        close; abort2: a second abort ``stop_at`` cycles into it), reset (after ``at`` words).
        late (abort at 0): the packet reaches the port only after the abort."""
        rng = self.rng
        next_packet = packet(next_plen)
        self.set_geometry(job)
        for _ in range(rng.randint(1, 3)):  # (the engine's configuration check: the FSM is idle)
            await self.cycle()
        self.model.job, self.taken, self.writes, start = job, 0, 0, self.cycles
        self.consume, self.rbank, self.delay, self.released = job.vec_in, 0, None, 0
        self.gap = rng.choice((0.0, 0.2, 0.6)) if gap is None else gap
        self.max_delay = rng.choice((0, 2, 8, 30))
        await self.cycle(start=1)
        extra = 0 if at is not None else rng.randint(0, 2)  # (cycles from the at-th word to the abort)
        if at is None:
            at = rng.randint(0, plen) if ending.startswith("abort") else rng.randint(min(1, plen - 1), plen - 1)

        def step_guard():
            assert self.cycles - start < JOB_CYCLES, f"job {job} ({ending}) hung: {self.taken} of {plen} words taken"

        if ending in ("exact", "long", "short"):
            while not (self.model.phase == DONE and self.released == job.n_vec) and not self.model.phase == IDLE:
                step_guard()
                await self.cycle()
            self.queue.extend(next_packet)
            if ending == "short":  # the engine cuts the job the next cycle, then closes its streams
                self.consume = False
                assert self.model.phase == IDLE and self.taken == plen
                await self.cycle()
                for _ in range(rng.randint(1, 2)):
                    await self.cycle(close=1)
            else:
                assert self.writes == job.length and self.released == job.n_vec, (self.writes, self.released, job)
                for _ in range(rng.randint(0, 2)):
                    await self.cycle()
                await self.cycle(job_end=1)
            self.cov[ending] += 1
        elif ending.startswith("abort"):
            while self.taken < at:
                step_guard()
                await self.cycle()
            for _ in range(extra):
                await self.cycle()
            self.queue.extend(next_packet if not late else [])  # (behind the TLAST: a drain stops there)
            self.consume = False
            self.cov["abort_in_" + self.model.phase] += 1
            await self.cycle(abort_run=1, abort=1)
            self.queue.extend(packet(plen) + next_packet if late else [])  # (never taken)
            self.cov["abort_drain"] += self.model.phase == DRAIN
            self.cov["abort_unbegun"] += self.taken == 0
            stop_at = rng.randint(0, 3) if stop_at is None else stop_at
            n = 0
            while self.model.phase == DRAIN:
                step_guard()
                stop = ending == "abort2" and n == stop_at
                await self.cycle(close=1, abort=int(stop))
                self.cov["drain_stopped"] += stop
                n += 1
            for _ in range(rng.randint(1, 2)):  # (the output side may keep the engine closing)
                await self.cycle(close=1)
            self.cov[ending] += 1
        else:
            assert ending == "reset"
            while self.taken < at:
                step_guard()
                await self.cycle()
            self.queue.extend(next_packet)
            for _ in range(rng.randint(1, 2)):
                await self.cycle(rst=1)
            self.cov["reset"] += 1
        if plen > self.taken:  # the rest of a packet the FSM gave up on: the DMA resets
            for _ in range(plen - self.taken):
                self.queue.popleft()
            self.offered = False
        for _ in range(2):  # (done_o holds the cycle after job_end_i)
            await self.cycle()
        assert self.model.phase == IDLE


ENDINGS = ("exact",) * 4 + ("short", "long", "long", "abort", "abort2", "abort2", "reset")


@cocotb.test()
async def random_jobs(dut):
    """Random jobs, packets, gaps, release delays and endings."""
    rng = seeded_rng()
    tb = Bench(dut, rng)
    await tb.init()
    plan = []
    for _ in range(120):
        job = random_job(rng, tb.sub_w, tb.bank_aw)
        plan.append((job, rng.choice([e for e in ENDINGS if e != "short" or job.length > 1]), {}))
    await tb.run_jobs(plan + [(random_job(rng, tb.sub_w, tb.bank_aw), "exact", {})])
    cocotb.log.info("coverage: %s over %d cycles", dict(tb.cov), tb.cycles)
    assert tb.cov["exact"] and tb.cov["full_stall"] > 10


@cocotb.test()
async def corner_cases(dut):
    """One-word packets, tiles and vectors, one vector, many vectors, the longest tile and vector;
    each ending at its edges: short on the first word and on a tile/vector boundary, abort before
    the first word, at the last one and after it, the drain stopped, reset on the first word."""
    rng = seeded_rng()
    tb = Bench(dut, rng)
    await tb.init()
    g = st.Geometry
    one_word = golden_job(st.MODE_LOAD_WEIGHTS, g(pe=4, simd=8), 3, 5, 1, 1)
    max_tile = golden_job(st.MODE_LOAD_THRESHOLDS, g(pe=1 << tb.sub_w, simd=1, thr_max=1), 3 << tb.sub_w, 1, 1, 1)
    bits = min(16, 1 << tb.bank_aw)
    max_vec = golden_job(st.MODE_FORWARD, g(pe=1, simd=1), 1, (1 << tb.bank_aw) // bits, 3, bits)
    many_vec = golden_job(st.MODE_FORWARD, g(pe=4, simd=16), 1, 9, 64, 1)
    one_vec = golden_job(st.MODE_BACKWARD_DATA, g(pe=2, simd=4), 3, 1, 1, 2)  # 4 words
    bwd_w = golden_job(st.MODE_BACKWARD_WEIGHT, g(pe=4, simd=8), 2, 3, 7, 1)  # 1 one-word tile, 2 one-word vectors
    assert (one_word.length, max_tile.per_tile, max_vec.vec_words) == (1, 1 << tb.sub_w, 1 << tb.bank_aw)
    assert (many_vec.vec_words, many_vec.n_vec, one_vec.n_vec, bwd_w.length) == (1, 64, 1, 3)
    plan = []
    for job in (one_word, max_tile, max_vec, many_vec, one_vec, bwd_w):
        assert job.per_tile <= 1 << tb.sub_w and job.vec_words <= 1 << tb.bank_aw, job
        n = job.length
        plan += [(job, "exact", {}), (job, "long", dict(plen=n + 1)),
                 (job, "abort", dict(at=0, late=True)),            # nothing begun: no drain
                 (job, "abort", dict(plen=n, at=n)),               # after the TLAST: no drain
                 (job, "abort", dict(plen=n + 3, at=n + 1)),       # in a long packet's drain
                 (job, "abort2", dict(plen=n + 5, at=1, gap=0.8, stop_at=1)),
                 (job, "reset", dict(plen=n + 1, at=1))]
        if n > 1:
            plan += [(job, "short", dict(plen=1)), (job, "short", dict(plen=n - 1)),
                     (job, "abort", dict(plen=n, at=n - 1))]
        if job.tile_total and job.vec_in:  # short on the first vector word
            plan.append((job, "short", dict(plen=job.tile_total + 1)))
    await tb.run_jobs(plan + [(many_vec, "exact", dict(gap=0.0))])
    cocotb.log.info("coverage: %s over %d cycles", dict(tb.cov), tb.cycles)
    assert tb.cov["drain_stopped"] >= 6 and tb.cov["abort_drain"] >= 12 and tb.cov["abort_unbegun"] >= 6
    assert tb.cov["full_stall"] > 0


BUILDS = [dict(SUB_W=1, BANK_AW=2), dict(SUB_W=2, BANK_AW=5), dict(SUB_W=3, BANK_AW=10)]


@pytest.mark.rtl
@pytest.mark.parametrize("params", BUILDS, ids=[f"sub{p['SUB_W']}_bank{p['BANK_AW']}" for p in BUILDS])
def test_bitcycle_in_fsm(params):
    import rtl_runner

    rtl_runner.run("bitcycle_in_fsm", rtl_sources("bitcycle_in_fsm"), "test_bitcycle_in_fsm", parameters=params,
                   tag=f"sub{params['SUB_W']}_bank{params['BANK_AW']}")
