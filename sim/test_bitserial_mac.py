"""cocotb testbench of hw/rtl/bitserial_mac.sv against bitcycle.golden.bitserial_matmul."""

from __future__ import annotations

import random

import numpy as np
import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from bitcycle.golden import bitserial_matmul, bit_planes, int_range

SIMD = 8
ACC_BITS = 24


async def reset(dut) -> None:
    dut.rst_ni.value = 0
    dut.valid_i.value = 0
    dut.last_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    await RisingEdge(dut.clk_i)


def random_dot(rng: random.Random, bits: int, k: int):
    w = np.array([rng.choice((-1, 1)) for _ in range(k)], dtype=np.int8)
    lo, hi = int_range(bits)
    if bits == 1:
        x = np.array([rng.choice((-1, 1)) for _ in range(k)], dtype=np.int64)
    else:
        x = np.array([rng.randint(lo, hi) for _ in range(k)], dtype=np.int64)
    return w, x


async def feed_dot(dut, rng: random.Random, w: np.ndarray, x: np.ndarray, bits: int, gap_prob: float) -> None:
    """Drive one dot product: chunks of SIMD lanes, `bits` planes per chunk, random idle cycles."""
    simd = int(dut.SIMD.value)
    planes = bit_planes(x[:, None], bits)[:, :, 0]  # [bits, K]
    n_chunks = -(-len(w) // simd)
    for c in range(n_chunks):
        lanes = range(c * simd, min((c + 1) * simd, len(w)))
        weight = sum(1 << i for i, k in enumerate(lanes) if w[k] > 0)
        en = (1 << len(lanes)) - 1
        for p in range(bits):
            while rng.random() < gap_prob:
                dut.valid_i.value = 0
                await FallingEdge(dut.clk_i)
            dut.valid_i.value = 1
            dut.weight_i.value = weight
            # lanes past K carry random junk: lane_en must mask them
            dut.plane_i.value = sum(int(planes[p, k]) << i for i, k in enumerate(lanes)) | (rng.getrandbits(simd) & ~en)
            dut.lane_en_i.value = en
            dut.last_i.value = int(c == n_chunks - 1)
            await FallingEdge(dut.clk_i)
    dut.valid_i.value = 0
    dut.last_i.value = 0


@cocotb.test()
async def random_dot_products(dut):
    """Bit-exact against the golden model over bits 1..8, K from 1 to 3*SIMD, random gaps."""
    rng = random.Random(cocotb.RANDOM_SEED)
    dut._log.info("seed %d", cocotb.RANDOM_SEED)
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    await reset(dut)
    results: list[int] = []

    async def collect():
        while True:
            await RisingEdge(dut.clk_i)
            if dut.done_o.value == 1:
                results.append(dut.result_o.value.to_signed())

    cocotb.start_soon(collect())
    await FallingEdge(dut.clk_i)
    expected = []
    for trial in range(60):
        bits = 1 + trial % 8
        k = rng.randint(1, 3 * SIMD)
        w, x = random_dot(rng, bits, k)
        dut.bits_i.value = bits
        await feed_dot(dut, rng, w, x, bits, gap_prob=0.2)
        expected.append(int(bitserial_matmul(w[None, :], x[:, None], bits, acc_bits=ACC_BITS)[0, 0]))
    await ClockCycles(dut.clk_i, 3)
    assert results == expected, f"mismatch: got {results} expected {expected}"


@cocotb.test()
async def reset_mid_dot_product(dut):
    """A reset in the middle of a dot product discards it; the next one is exact."""
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    await reset(dut)
    await FallingEdge(dut.clk_i)
    bits = 4
    dut.bits_i.value = bits
    w, x = random_dot(rng, bits, 2 * SIMD)
    # half of the planes of the first chunk, then reset
    dut.valid_i.value = 1
    dut.weight_i.value = rng.getrandbits(SIMD)
    dut.plane_i.value = rng.getrandbits(SIMD)
    dut.lane_en_i.value = (1 << SIMD) - 1
    dut.last_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    await reset(dut)
    await FallingEdge(dut.clk_i)
    got = []

    async def collect():
        while True:
            await RisingEdge(dut.clk_i)
            if dut.done_o.value == 1:
                got.append(dut.result_o.value.to_signed())

    cocotb.start_soon(collect())
    await feed_dot(dut, rng, w, x, bits, gap_prob=0.0)
    await ClockCycles(dut.clk_i, 3)
    assert got == [int(bitserial_matmul(w[None, :], x[:, None], bits)[0, 0])]


@cocotb.test()
async def saturates_at_out_bits(dut):
    """Sums beyond the signed OUT_BITS range come out clamped, as golden's acc_bits."""
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    await reset(dut)
    await FallingEdge(dut.clk_i)
    out_bits = int(dut.OUT_BITS.value)
    bits = 8
    k = 3 * SIMD
    for sign in (1, -1):
        w = np.ones(k, dtype=np.int8)
        x = np.full(k, 127 if sign > 0 else -128, dtype=np.int64)
        dut.bits_i.value = bits
        results = []

        async def collect():
            while not results:
                await RisingEdge(dut.clk_i)
                if dut.done_o.value == 1:
                    results.append(dut.result_o.value.to_signed())

        task = cocotb.start_soon(collect())
        await FallingEdge(dut.clk_i)
        await feed_dot(dut, random.Random(0), w, x, bits, gap_prob=0.0)
        await task
        assert results[0] == int(bitserial_matmul(w[None, :], x[:, None], bits, acc_bits=out_bits)[0, 0])
        exact = int(bitserial_matmul(w[None, :], x[:, None], bits)[0, 0])
        if abs(exact) >= 1 << (out_bits - 1):  # this OUT_BITS overflows: the output sits at the limit
            assert results[0] == (-(1 << (out_bits - 1)) if sign < 0 else (1 << (out_bits - 1)) - 1)


@pytest.mark.rtl
@pytest.mark.parametrize("out_bits", [ACC_BITS, 10])
def test_bitserial_mac(out_bits):
    import rtl_runner

    rtl_runner.run(
        "bitserial_mac",
        ["bitserial_mac.sv"],
        "test_bitserial_mac",
        parameters={"SIMD": SIMD, "MAX_BITS": 16, "ACC_BITS": ACC_BITS, "OUT_BITS": out_bits},
        tag=f"o{out_bits}",
    )
