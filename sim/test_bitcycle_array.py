"""cocotb testbench of hw/rtl/bitcycle_array.sv: random beats (tiles, plane-chunks, lane enables,
integer and bipolar planes, forward and transposed lanes, MSB planes, gaps between beats) against
a Python model of the cells, popcounts and positional accumulators (plane p adds its sum times
2^p, or -2^p for an MSB plane); the result of a beat (each lane's acc_o minus the shared off_o,
modulo 2^ACC_BITS) is checked 2 + POP_REG cycles after it (POP_REG: the popcount leaves, then the
popcounts, then the sums), with random stalls (stall_i) that hold every stage. Whole products are cross-checked with
bitcycle.golden.bitserial_matmul.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from bitcycle.golden import bitserial_matmul
from bitcycle.golden.bitserial import bit_planes
from bitcycle.hwif.rtl import rtl_sources


def _wrap(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


class ArrayModel:
    def __init__(self, pe, simd, acc_bits):
        self.pe, self.simd, self.acc_bits = pe, simd, acc_bits
        self.lanes = max(pe, simd)
        self.acc = [0] * self.lanes

    def beat(self, w, x, en, trans, bipolar, first, plane, msb):
        pe, simd = self.pe, self.simd
        bit = lambda v, i: (v >> i) & 1  # noqa: E731
        f = (lambda a, b: 1 - (a ^ b)) if bipolar else (lambda a, b: a & b)
        sub = sum(bit(en, i) for i in range(self.lanes)) if bipolar else bin(en & x).count("1")
        for o in range(self.lanes):
            if trans:
                pop = sum(bit(en, i) & f(bit(w, i * simd + o), bit(x, i)) for i in range(pe)) if o < simd else 0
            else:
                pop = sum(bit(en, j) & f(bit(w, o * simd + j), bit(x, j)) for j in range(simd)) if o < pe else 0
            base = 0 if first else self.acc[o]
            ps = (2 * pop - sub) << plane
            self.acc[o] = _wrap(base - ps if msb else base + ps, self.acc_bits)


def _read_acc(dut, lanes, acc_bits):
    v, off = int(dut.acc_o.value), int(dut.off_o.value)
    return [_wrap((v >> (o * acc_bits)) - off, acc_bits) for o in range(lanes)]


async def _setup(dut):
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    for name in ("valid_i", "stall_i", "first_i", "plane_i", "msb_i", "trans_i", "bipolar_i", "en_i", "x_i", "w_i"):
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk_i, 3)


async def _drive(dut, model, beats, rng, stalls: bool = True):
    """beats: dicts of the array's inputs; random gaps in between and random stalls (stall_i holds
    every stage, and the beat on offer is not taken). One loop turn is one clock cycle: at its
    falling edge the state the last rising edge left is checked (acc_o of the beat that left the
    popcount registers then, first_o of the one now in them), then the inputs for the coming edge
    are driven. The beats in flight before the accumulators: 1 + POP_REG stages."""
    lanes, acc_bits = model.lanes, model.acc_bits
    stages = [None] * (1 + int(dut.POP_REG.value))  # stages[-1]: the beat in the popcount registers
    leaving = None   # the beat that left them at the last edge (its sums are in acc_o now)
    queue = list(beats)
    while queue or any(b is not None for b in stages) or leaving is not None:
        await FallingEdge(dut.clk_i)
        if leaving is not None:
            model.beat(**leaving)
            got = _read_acc(dut, lanes, acc_bits)
            assert got == model.acc, f"beat {leaving}: got {got}, expected {model.acc}"
        at_pop = stages[-1]
        assert int(dut.first_o.value) == int(at_pop is not None and at_pop["first"]), at_pop
        stall = stalls and any(b is not None for b in stages) and rng.random() < 0.25
        offer = queue[0] if queue and rng.random() < 0.8 else None
        if offer is not None:
            for k, v in offer.items():
                getattr(dut, f"{k}_i").value = int(v)
        dut.valid_i.value, dut.stall_i.value = int(offer is not None), int(stall)
        if stall:  # nothing moves: the offer is not taken, acc_o keeps its sums
            leaving = None
            continue
        leaving, stages = stages[-1], [offer] + stages[:-1]
        if offer is not None:
            queue.pop(0)
    dut.valid_i.value, dut.stall_i.value = 0, 0


@cocotb.test()
async def random_beats(dut):
    seed = cocotb.RANDOM_SEED
    cocotb.log.info("RANDOM_SEED=%d", seed)
    rng = random.Random(seed)
    pe, simd, acc_bits = int(dut.PE.value), int(dut.SIMD.value), int(dut.ACC_BITS.value)
    model = ArrayModel(pe, simd, acc_bits)
    await _setup(dut)
    beats = []
    for _group in range(40):
        trans = rng.random() < 0.5
        bipolar = rng.random() < 0.3
        planes = 1 if bipolar else rng.randint(1, 6)
        chunks = rng.randint(1, 3)
        width = pe if trans else simd
        for p in range(planes):
            for c in range(chunks):
                n_en = width if c < chunks - 1 else rng.randint(1, width)  # a short last chunk
                beats.append(dict(w=rng.getrandbits(pe * simd), x=rng.getrandbits(max(pe, simd)),
                                  en=(1 << n_en) - 1, trans=trans, bipolar=bipolar, first=(p == 0 and c == 0),
                                  plane=planes - 1 - p, msb=(p == 0 and planes > 1)))
    await _drive(dut, model, beats, rng)


@cocotb.test()
async def whole_products(dut):
    """Forward y = W.x over one tile, bits 1..8, as the issue sequencer would walk it, vs the golden."""
    seed = cocotb.RANDOM_SEED
    rng = random.Random(seed + 1)
    nrng = np.random.default_rng(seed)
    pe, simd, acc_bits = int(dut.PE.value), int(dut.SIMD.value), int(dut.ACC_BITS.value)
    model = ArrayModel(pe, simd, acc_bits)
    await _setup(dut)
    for bits in (1, 2, 5, 8):
        w = nrng.choice(np.array([-1, 1], dtype=np.int8), size=(pe, simd))
        if bits == 1:
            x = nrng.choice(np.array([-1, 1]), size=(simd, 1))
        else:
            x = nrng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(simd, 1))
        wbits = sum(int(w[i, j] > 0) << (i * simd + j) for i in range(pe) for j in range(simd))
        planes = bit_planes(x, bits)[::-1]  # [bits, K, 1], MSB first (bit_planes gives LSB first)
        beats = []
        for p in range(bits):
            xb = sum(int(planes[p, j, 0]) << j for j in range(simd))
            beats.append(dict(w=wbits, x=xb, en=(1 << simd) - 1, trans=False, bipolar=(bits == 1),
                              first=(p == 0), plane=bits - 1 - p, msb=(p == 0 and bits > 1)))
        await _drive(dut, model, beats, rng)
        expected = bitserial_matmul(w, x, bits)[:, 0].tolist()
        assert model.acc[:pe] == expected, (bits, model.acc[:pe], expected)


@pytest.mark.rtl
@pytest.mark.parametrize("pe,simd,acc,pop_reg", [(4, 8, 12, 0), (8, 4, 16, 0), (4, 8, 12, 1), (16, 13, 20, 1)])
def test_bitcycle_array(pe, simd, acc, pop_reg):
    import rtl_runner

    rtl_runner.run("bitcycle_array", rtl_sources("bitcycle_array"), "test_bitcycle_array",
                   parameters={"PE": pe, "SIMD": simd, "ACC_BITS": acc, "POP_REG": pop_reg},
                   tag=f"p{pe}s{simd}r{pop_reg}")
