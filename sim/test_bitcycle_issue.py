"""cocotb testbench of hw/rtl/bitcycle_issue.sv, the issue sequencer, on its own.

Random legal jobs of the three compute modes (their geometry derived from MODE/M/K/N as
bitcycle_cfg_check derives it, mirrored in :func:`geometry`), bits 1..16, are walked by a Python
reference of the documented order -- chunk (inner), plane MSB first, output group, vector (outer) --
under random freeze_i and random vector-bank availability (the two banks modelled as
bitcycle_in_fsm keeps them: filled with the next vector at random times, freed two edges after
rd_release_o names them). Checked cycle by cycle:

* stage 0, in each cycle a beat must issue (its bank full, no freeze): tile_raddr_o (tile (g, c)
  at g*cols + c, the order of golden ``pack_binary_tiles``; transposed in backward-data),
  vbuf_raddr_o = {bank, word} (the word order of golden ``pack_vectors``), grp_o (THR_AW bits),
  and on every cycle last_o (a group's last beat), rd_release_o (a vector's last beat) with rd_bank_o;
* stage 1, the edge after: s1_valid_o, first, plane, msb (bits > 1 only; bits = 1 is bipolar),
  grp_last, vec_last, job_last, en (the lanes inside the reduction length), out_cnt (the values of
  the group), trans and bipolar; a frozen cycle issues nothing and stage 1 keeps its beat;
* active_o, falling the edge after the last beat; the beats seen at stage 1 equal the golden
  ``array_cycles`` of the job;
* stop_i in mid-job (no further beat, stage 1 empties), a start with is_compute_i low (no beat
  although the banks are full), reset in mid-job, each followed by a clean job.

Two builds (CHUNK_W 8 and 16, different TILE_AW, THR_AW and BANK_AW), Verilator or SIM=icarus.
Seeded by RANDOM_SEED (printed by the runner).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from bitcycle.golden import stream as st
from bitcycle.golden.cycles import array_cycles
from bitcycle.hwif.rtl import rtl_sources
from seeding import seeded_rng

# engine builds: the issue sequencer's parameters follow from them as bitcycle_engine derives them
BUILDS = {
    "c8": dict(PE=4, SIMD=8, WMEM=64, AMEM=32, TMEM=8, MAX_CHUNKS=8),
    "c16": dict(PE=16, SIMD=8, WMEM=128, AMEM=256, TMEM=64, MAX_CHUNKS=16),
}
MODES = (st.MODE_FORWARD, st.MODE_BACKWARD_DATA, st.MODE_BACKWARD_WEIGHT)
MAX_BEATS = 480  # per random job (keeps a build's run short)


def _aw(depth: int) -> int:
    """An address width as the engine takes it: $clog2(depth), at least 1."""
    return max(1, (depth - 1).bit_length())


def dut_parameters(b: dict) -> dict:
    return {"CHUNK_W": max(b["PE"], b["SIMD"]), "TILE_AW": max(_aw(b["WMEM"]), _aw(b["AMEM"])),
            "THR_AW": _aw(b["TMEM"]), "BANK_AW": _aw(b["MAX_CHUNKS"] * 16)}


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Job:
    mode: int
    bits: int
    m: int
    k: int
    n: int
    out_rows: int
    red_len: int
    n_vec: int
    n_out: int
    n_red: int
    n_cols: int
    lanes_out: int
    chunk: int

    @property
    def trans(self) -> bool:
        return self.mode == st.MODE_BACKWARD_DATA


def geometry(b: dict, mode: int, bits: int, m: int, k: int, n: int) -> Job | None:
    """bitcycle_cfg_check's job geometry, or None when its shape check refuses the job."""
    pe, simd = b["PE"], b["SIMD"]
    m_pe, k_pe, k_simd, n_simd = _ceil(m, pe), _ceil(k, pe), _ceil(k, simd), _ceil(n, simd)
    if mode == st.MODE_BACKWARD_DATA:
        g = dict(out_rows=k, red_len=m, n_vec=n, n_out=k_simd, n_red=m_pe, n_cols=k_simd, lanes_out=simd, chunk=pe)
    elif mode == st.MODE_BACKWARD_WEIGHT:
        g = dict(out_rows=k, red_len=n, n_vec=m, n_out=k_pe, n_red=n_simd, n_cols=n_simd, lanes_out=pe, chunk=simd)
    else:
        g = dict(out_rows=m, red_len=k, n_vec=n, n_out=m_pe, n_red=k_simd, n_cols=k_simd, lanes_out=pe, chunk=simd)
    tiles, depth = (k_pe * n_simd, b["AMEM"]) if mode == st.MODE_BACKWARD_WEIGHT else (m_pe * k_simd, b["WMEM"])
    if min(m, k, n) < 1 or g["n_red"] > b["MAX_CHUNKS"] or tiles > depth:
        return None
    assert g["chunk"] == st.Geometry(pe=pe, simd=simd).chunk(mode)
    return Job(mode, bits, m, k, n, **g)


def random_job(b: dict, rng: random.Random, mode: int, bits: int | None = None, max_beats: int = MAX_BEATS) -> Job:
    """A legal job of ``mode`` of at most ``max_beats`` beats: dimensions from one unit to the memories' limits."""
    unit = max(b["PE"], b["SIMD"])
    while True:
        nb = bits or rng.randint(1, 16)
        dims = [rng.choice([rng.randint(1, unit), rng.randint(1, 4 * unit), rng.randint(1, b["MAX_CHUNKS"] * unit)])
                for _ in range(3)]
        job = geometry(b, mode, nb, *dims)
        if job is not None and array_cycles(mode, nb, *dims, b["PE"], b["SIMD"]) <= max_beats:
            return job


@dataclass(frozen=True)
class Beat:
    bank: int
    tile: int
    vaddr: int
    grp: int
    first: bool
    plane: int
    msb: bool
    grp_last: bool
    vec_last: bool
    job_last: bool
    en: int
    out_cnt: int


def walk(job: Job, p: dict) -> list[Beat]:
    """The documented beat order: vector (outer), output group, plane MSB first, chunk (inner).
    Vector v sits in bank v % 2 as pack_vectors' words (plane MSB first, chunks inner); the tile of
    (group g, chunk c) is g*cols + c, transposed (c*cols + g) in backward-data."""
    beats = []
    for v in range(job.n_vec):
        for og in range(job.n_out):
            for word, (plane, rc) in enumerate((pl, c) for pl in reversed(range(job.bits)) for c in range(job.n_red)):
                grp_last = plane == 0 and rc == job.n_red - 1
                vec_last = grp_last and og == job.n_out - 1
                tile = rc * job.n_cols + og if job.trans else og * job.n_cols + rc
                beats.append(Beat(
                    bank=v % 2, tile=tile % (1 << p["TILE_AW"]), vaddr=(v % 2) << p["BANK_AW"] | word,
                    grp=og % (1 << p["THR_AW"]), first=word == 0, plane=plane,
                    msb=plane == job.bits - 1 and job.bits > 1, grp_last=grp_last, vec_last=vec_last,
                    job_last=vec_last and v == job.n_vec - 1,
                    en=(1 << min(job.red_len - rc * job.chunk, job.chunk)) - 1,
                    out_cnt=min(job.out_rows - og * job.lanes_out, job.lanes_out)))
    return beats


class Banks:
    """The vector buffer's two banks as bitcycle_in_fsm keeps them: the writer fills bank ``wbank``
    with the next vector (its last word at a random cycle) when that bank is free; a release
    (rd_release_o) is registered, then clears the bank at the following edge."""

    def __init__(self, n_vec: int, fill_p: float, rng: random.Random):
        self.full, self.wbank, self.left, self.rel = [False, False], 0, n_vec, None
        self.fill_p, self.rng = fill_p, rng

    @property
    def value(self) -> int:
        return int(self.full[0]) | int(self.full[1]) << 1

    def edge(self, release: int | None) -> None:
        clear, self.rel = self.rel, release
        fill = self.left > 0 and not self.full[self.wbank] and self.rng.random() < self.fill_p
        if clear is not None:
            self.full[clear] = False
        if fill:
            self.full[self.wbank], self.wbank, self.left = True, self.wbank ^ 1, self.left - 1


S1_FIELDS = dict(first="s1_first_o", plane="s1_plane_o", msb="s1_msb_o", grp_last="s1_grp_last_o",
                 vec_last="s1_vec_last_o", job_last="s1_job_last_o", en="s1_en_o", out_cnt="s1_out_cnt_o")


class Bench:
    """Drives the sequencer one cycle at a time against the reference walk."""

    def __init__(self, dut, b: dict, rng: random.Random):
        self.dut, self.b, self.rng = dut, b, rng
        self.p = dut_parameters(b)
        for name, value in self.p.items():
            assert int(getattr(dut, name).value) == value, (name, int(getattr(dut, name).value), value)
        self.job: Job | None = None
        self.beats: list[Beat] = []
        self.idx, self.running, self.s1, self.seen, self.was_frozen = 0, False, None, 0, False
        self.banks = Banks(0, 0.0, rng)
        self.freeze_p = 0.0
        self.cover: dict[str, int] = {}

    def _note(self, what: str) -> None:
        self.cover[what] = self.cover.get(what, 0) + 1

    async def setup(self):
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
        for name in ("start_run_i", "stop_i", "is_compute_i", "trans_i", "bits_i", "out_rows_i", "red_len_i",
                     "n_vec_i", "n_out_i", "n_red_i", "n_cols_i", "lanes_out_i", "chunk_i", "full_i", "freeze_i"):
            getattr(dut, name).value = 0
        dut.rst_ni.value = 0
        await self.reset()

    async def reset(self, cycles: int = 2):
        """rst_ni low at a falling edge (asynchronous: at once) for ``cycles``: nothing active, no beat."""
        dut = self.dut
        await FallingEdge(dut.clk_i)
        dut.rst_ni.value, dut.start_run_i.value, dut.stop_i.value = 0, 0, 0
        for _ in range(cycles):
            await FallingEdge(dut.clk_i)
            assert int(dut.active_o.value) == 0 and int(dut.s1_valid_o.value) == 0, "not idle in reset"
        dut.rst_ni.value = 1
        self.running, self.s1, self.was_frozen = False, None, False

    def _drive_job(self, job: Job, is_compute: bool) -> None:
        d = self.dut
        d.is_compute_i.value, d.trans_i.value, d.bits_i.value = int(is_compute), int(job.trans), job.bits
        d.out_rows_i.value, d.red_len_i.value, d.n_vec_i.value = job.out_rows, job.red_len, job.n_vec
        d.n_out_i.value, d.n_red_i.value, d.n_cols_i.value = job.n_out, job.n_red, job.n_cols
        d.lanes_out_i.value, d.chunk_i.value = job.lanes_out, job.chunk

    def _check_stage1(self) -> None:
        """What the last rising edge left: active_o and the beat at stage 1."""
        dut, beat = self.dut, self.s1
        assert int(dut.active_o.value) == int(self.running and self.idx < len(self.beats)), \
            f"active_o after {self.idx} of {len(self.beats)} beats ({self.job})"
        valid = int(dut.s1_valid_o.value)
        assert valid == int(beat is not None), f"s1_valid_o={valid}, expected beat {beat} ({self.job})"
        if beat is None:
            return
        self.seen += int(not self.was_frozen)
        for field, sig in S1_FIELDS.items():
            got = int(getattr(dut, sig).value)
            assert got == int(getattr(beat, field)), f"{sig}={got:#x}, expected {int(getattr(beat, field)):#x}: {beat} ({self.job})"
        assert int(dut.s1_trans_o.value) == int(self.job.trans), f"s1_trans_o ({self.job})"
        assert int(dut.s1_bipolar_o.value) == int(self.job.bits == 1), f"s1_bipolar_o ({self.job})"

    def _check_stage0(self, beat: Beat | None) -> None:
        """The combinational outputs of this cycle: ``beat`` issues now (None: no beat issues)."""
        dut = self.dut
        assert int(dut.last_o.value) == int(beat is not None and beat.grp_last), f"last_o, beat {beat} ({self.job})"
        assert int(dut.rd_release_o.value) == int(beat is not None and beat.vec_last), f"rd_release_o, beat {beat} ({self.job})"
        if beat is None:
            return
        got = dict(tile=int(dut.tile_raddr_o.value), vaddr=int(dut.vbuf_raddr_o.value), grp=int(dut.grp_o.value))
        want = dict(tile=beat.tile, vaddr=beat.vaddr, grp=beat.grp)
        assert got == want, f"stage 0 {got} != {want}: beat {self.idx} {beat} ({self.job})"
        if beat.vec_last:
            assert int(dut.rd_bank_o.value) == beat.bank, f"rd_bank_o with the release of bank {beat.bank}"

    async def cycle(self, stop: bool = False, start: Job | None = None, is_compute: bool = True, fill_p: float = 1.0):
        """One clock cycle: check the registered outputs at the falling edge, drive this cycle's
        inputs, check the stage-0 outputs, then advance the reference by the coming rising edge."""
        dut = self.dut
        await FallingEdge(dut.clk_i)
        self._check_stage1()
        freeze = self.rng.random() < self.freeze_p
        need = self.beats[self.idx] if self.running and self.idx < len(self.beats) else None
        issue = need is not None and self.banks.full[need.bank] and not freeze
        if start is not None:
            self._drive_job(start, is_compute)
        dut.start_run_i.value, dut.stop_i.value, dut.freeze_i.value = int(start is not None), int(stop), int(freeze)
        dut.full_i.value = self.banks.value
        await Timer(1, unit="ns")
        if not stop:  # (last_o and rd_release_o are not gated by stop_i: the engine clears for a stop)
            self._check_stage0(need if issue else None)
        if need is not None and not issue:
            self._note("frozen" if freeze else "bank empty")
        if freeze and self.s1 is not None:
            self._note("stage 1 held")
        if stop:
            self.s1, self.running = None, False
        elif not freeze:
            self.s1 = need if issue else None
        self.was_frozen = freeze
        self.idx += int(issue and not stop)
        self.banks.edge(need.bank if issue and not stop and need.vec_last else None)
        if start is not None:
            self.job, self.beats, self.idx, self.running, self.seen = start, walk(start, self.p), 0, is_compute, 0
            self.banks = Banks(start.n_vec, fill_p, self.rng)  # (the input FSM empties the banks at the start)

    async def drain(self, cycles: int = 3):
        """Idle cycles until stage 1 is empty (its last beat checked), at least ``cycles``: no new beat."""
        for _ in range(cycles):
            await self.cycle()
        while self.s1 is not None:
            await self.cycle()

    async def run_job(self, job: Job, cut: str | None = None, cut_after: int = 0, is_compute: bool = True):
        """Start ``job`` and walk it to its end, or cut it (``cut`` = "stop" or "reset") once
        ``cut_after`` beats have issued."""
        self.freeze_p = self.rng.choice([0.0, 0.1, 0.3, 0.5])
        fill_p = self.rng.choice([1.0, 0.5, 0.1, 0.03]) if is_compute else 1.0  # (no compute: banks full, no beat)
        await self.cycle(start=job, is_compute=is_compute, fill_p=fill_p)
        budget = 60 * (len(self.beats) + job.n_vec) + 200
        while self.running and self.idx < len(self.beats) and not (cut and self.idx >= cut_after):
            await self.cycle()
            budget -= 1
            assert budget > 0, "the job does not end"
        if cut == "reset":
            await self.reset(self.rng.randint(1, 3))
        elif cut == "stop":
            await self.cycle(stop=True)
        await self.drain(3 if is_compute else 6)
        if cut is None and is_compute:
            golden = array_cycles(job.mode, job.bits, job.m, job.k, job.n, self.b["PE"], self.b["SIMD"])
            assert len(self.beats) == golden, f"reference walk {len(self.beats)} beats, golden {golden} ({job})"
            assert self.seen == golden, f"{self.seen} beats at stage 1, golden array_cycles {golden} ({job})"
            self._note(f"mode {job.mode}")
            self._note(f"bits {job.bits}")
            if job.n_out > 1 << self.p["THR_AW"]:
                self._note("group index wraps")
            for beat in self.beats:
                self._note("ragged chunk" if beat.en != (1 << job.chunk) - 1 else "full chunk")
                self._note("ragged group" if beat.out_cnt != job.lanes_out else "full group")


async def make_bench(dut) -> Bench:
    b = BUILDS[os.environ["ISSUE_BUILD"]]
    cocotb.log.info("build %s", b)
    bench = Bench(dut, b, seeded_rng())
    await bench.setup()
    return bench


def corner_jobs(b: dict) -> list[Job]:
    """Per mode: the smallest job, bits 16 over the most chunks a vector may have, a ragged one;
    then a forward job with more groups than grp_o counts (THR_AW bits) over most of the weight memory."""
    pe, simd, mc = b["PE"], b["SIMD"], b["MAX_CHUNKS"]
    jobs = []
    for mode in MODES:
        chunk = st.Geometry(pe=pe, simd=simd).chunk(mode)
        longest = {st.MODE_FORWARD: (1, mc * chunk, 1), st.MODE_BACKWARD_DATA: (mc * chunk - 1, 1, 1),
                   st.MODE_BACKWARD_WEIGHT: (1, 1, mc * chunk)}[mode]
        for bits, dims in ((1, (1, 1, 1)), (16, longest), (2, (2 * pe + 1, 2 * simd + 3, 3))):
            job = geometry(b, mode, bits, *dims)
            assert job is not None, (mode, bits, dims)
            jobs.append(job)
    m_pe = (1 << dut_parameters(b)["THR_AW"]) + 1
    jobs.append(geometry(b, st.MODE_FORWARD, 1, m_pe * pe, b["WMEM"] // m_pe * simd, 2))
    return jobs


@cocotb.test()
async def random_jobs(dut):
    """Corner jobs, then random legal jobs of every mode, back to back."""
    bench = await make_bench(dut)
    jobs = corner_jobs(bench.b) + [random_job(bench.b, bench.rng, MODES[i % 3]) for i in range(60)]
    for job in jobs:
        await bench.run_job(job)
    cocotb.log.info("coverage: %s", dict(sorted(bench.cover.items())))
    for what in ("frozen", "bank empty", "stage 1 held", "ragged chunk", "ragged group", "bits 1", "bits 16",
                 "group index wraps",
                 *(f"mode {m}" for m in MODES)):
        assert bench.cover.get(what), f"not covered: {what}"


@cocotb.test()
async def stop_and_restart(dut):
    """stop_i in mid-job, a start that is no compute job; each followed by a clean job."""
    bench = await make_bench(dut)
    for i in range(12):
        job = random_job(bench.b, bench.rng, MODES[i % 3], max_beats=120)
        await bench.run_job(job, cut="stop", cut_after=bench.rng.randrange(len(walk(job, bench.p))))
        await bench.run_job(replace(job, bits=bench.rng.randint(1, 16)), is_compute=False)
        await bench.run_job(random_job(bench.b, bench.rng, MODES[(i + 1) % 3], max_beats=120))


@cocotb.test()
async def reset_mid_job(dut):
    """rst_ni in mid-job, then a clean job."""
    bench = await make_bench(dut)
    for i in range(8):
        job = random_job(bench.b, bench.rng, MODES[i % 3], max_beats=120)
        await bench.run_job(job, cut="reset", cut_after=bench.rng.randrange(len(walk(job, bench.p))))
        await bench.run_job(random_job(bench.b, bench.rng, MODES[(i + 2) % 3], max_beats=120))


def run_build(build: str, sources: list[str] | None = None, tag: str | None = None) -> None:
    """Build the sequencer with ``build``'s parameters (``sources``: another copy of the RTL) and run this bench."""
    import rtl_runner

    rtl_runner.run("bitcycle_issue", sources or list(rtl_sources("bitcycle_issue")), "test_bitcycle_issue",
                   parameters=dut_parameters(BUILDS[build]), tag=tag or build, extra_env={"ISSUE_BUILD": build})


@pytest.mark.rtl
@pytest.mark.parametrize("build", sorted(BUILDS))
def test_bitcycle_issue(build):
    run_build(build)
