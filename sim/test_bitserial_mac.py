"""cocotb testbench of hw/rtl/bitserial_mac.sv against bitcycle.golden.bitserial_matmul."""

from __future__ import annotations

import random

import numpy as np
import pytest

import cocotb
from cocotb.triggers import ClockCycles

from bitcycle.golden import bitserial_matmul, int_range
from bitcycle.hwif.rtl import rtl_sources
from mac_driver import collect_results, feed_dot, start_and_reset

SIMD = 8
ACC_BITS = 24


def random_dot(rng: random.Random, bits: int, k: int):
    w = np.array([rng.choice((-1, 1)) for _ in range(k)], dtype=np.int8)
    lo, hi = int_range(bits)
    if bits == 1:
        x = np.array([rng.choice((-1, 1)) for _ in range(k)], dtype=np.int64)
    else:
        x = np.array([rng.randint(lo, hi) for _ in range(k)], dtype=np.int64)
    return w, x


@cocotb.test()
async def random_dot_products(dut):
    """Bit-exact against the golden model over bits 1..8, K from 1 to 3*SIMD, random gaps."""
    rng = random.Random(cocotb.RANDOM_SEED)
    dut._log.info("seed %d", cocotb.RANDOM_SEED)
    await start_and_reset(dut)
    out_bits = int(dut.OUT_BITS.value)
    results: list[int] = []
    collect_results(dut, results)
    expected = []
    for trial in range(60):
        bits = 1 + trial % 8  # bits change between dot products
        w, x = random_dot(rng, bits, rng.randint(1, 3 * SIMD))
        dut.bits_i.value = bits
        await feed_dot(dut, w, x, bits, rng, gap_prob=0.2)
        expected.append(int(bitserial_matmul(w[None, :], x[:, None], bits, acc_bits=out_bits)[0, 0]))
    await ClockCycles(dut.clk_i, 3)
    assert results == expected, f"mismatch: got {results} expected {expected}"


@cocotb.test()
async def reset_mid_dot_product(dut):
    """A reset in the middle of a dot product discards it; the next one is exact."""
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    await start_and_reset(dut)
    bits = 4
    dut.bits_i.value = bits
    w, x = random_dot(rng, bits, 2 * SIMD)
    # two planes of a first chunk, then reset
    dut.valid_i.value = 1
    dut.weight_i.value = rng.getrandbits(SIMD)
    dut.plane_i.value = rng.getrandbits(SIMD)
    dut.lane_en_i.value = (1 << SIMD) - 1
    dut.last_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    await start_and_reset(dut, start_clock=False)
    got: list[int] = []
    collect_results(dut, got)
    await feed_dot(dut, w, x, bits, rng)
    await ClockCycles(dut.clk_i, 3)
    assert got == [int(bitserial_matmul(w[None, :], x[:, None], bits)[0, 0])]


@cocotb.test()
async def saturates_at_out_bits(dut):
    """Sums beyond the signed OUT_BITS range come out clamped, as golden's acc_bits."""
    await start_and_reset(dut)
    out_bits = int(dut.OUT_BITS.value)
    bits, k = 8, 3 * SIMD
    results: list[int] = []
    collect_results(dut, results)
    for extreme in (127, -128):
        w = np.ones(k, dtype=np.int8)
        x = np.full(k, extreme, dtype=np.int64)
        dut.bits_i.value = bits
        await feed_dot(dut, w, x, bits)
        await ClockCycles(dut.clk_i, 2, rising=False)  # end on a falling edge: the next drive is safe
        assert results[-1] == int(bitserial_matmul(w[None, :], x[:, None], bits, acc_bits=out_bits)[0, 0])
        exact = int(bitserial_matmul(w[None, :], x[:, None], bits)[0, 0])
        if abs(exact) >= 1 << (out_bits - 1):  # this OUT_BITS overflows: the output sits at the limit
            assert results[-1] == (-(1 << (out_bits - 1)) if extreme < 0 else (1 << (out_bits - 1)) - 1)
    assert len(results) == 2


@pytest.mark.rtl
@pytest.mark.parametrize("out_bits", [ACC_BITS, 10])
def test_bitserial_mac(out_bits):
    import rtl_runner

    rtl_runner.run(
        "bitserial_mac",
        rtl_sources("bitserial_mac"),
        "test_bitserial_mac",
        parameters={"SIMD": SIMD, "MAX_BITS": 16, "ACC_BITS": ACC_BITS, "OUT_BITS": out_bits},
        tag=f"o{out_bits}",
    )
