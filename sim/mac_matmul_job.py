"""cocotb module: run a whole matrix product through ``bitserial_mac`` from a job file.

Used by ``bitcycle demo`` (and anyone who wants the RTL's answer for one product): the job is an
.npz with ``binary`` [M,K] (±1), ``ints`` [K,N], ``bits``; the results [M,N] go to
``$BITCYCLE_MAC_JOB_OUT``. Each of the M·N dot products is streamed as ceil(K/SIMD) chunks of
``bits`` planes, exactly as the array consumes them.
"""

from __future__ import annotations

import os

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from bitcycle.golden import bit_planes


@cocotb.test()
async def run_job(dut):
    job = np.load(os.environ["BITCYCLE_MAC_JOB"])
    binary, ints, bits = job["binary"], job["ints"], int(job["bits"])
    simd = int(dut.SIMD.value)
    m, k = binary.shape
    n = ints.shape[1]
    planes = bit_planes(ints, bits)  # [bits, K, N]
    chunks = [range(c, min(c + simd, k)) for c in range(0, k, simd)]
    # Pre-pack every beat's lane words: weights per (row, chunk), planes per (chunk, plane, column).
    w_words = [[sum(1 << i for i, kk in enumerate(ch) if binary[r, kk] > 0) for ch in chunks] for r in range(m)]
    x_words = [
        [[sum(int(planes[p, kk, col]) << i for i, kk in enumerate(ch)) for col in range(n)] for p in range(bits)]
        for ch in chunks
    ]
    en_words = [(1 << len(ch)) - 1 for ch in chunks]

    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    dut.rst_ni.value = 0
    dut.valid_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    dut.bits_i.value = bits
    results: list[int] = []

    async def collect():
        while True:
            await RisingEdge(dut.clk_i)
            if dut.done_o.value == 1:
                results.append(dut.result_o.value.to_signed())

    cocotb.start_soon(collect())
    await FallingEdge(dut.clk_i)
    for r in range(m):
        for col in range(n):
            for c in range(len(chunks)):
                dut.weight_i.value = w_words[r][c]
                dut.lane_en_i.value = en_words[c]
                dut.last_i.value = int(c == len(chunks) - 1)
                for p in range(bits):
                    dut.valid_i.value = 1
                    dut.plane_i.value = x_words[c][p][col]
                    await FallingEdge(dut.clk_i)
    dut.valid_i.value = 0
    await ClockCycles(dut.clk_i, 3)
    assert len(results) == m * n, f"expected {m * n} results, got {len(results)}"
    np.save(os.environ["BITCYCLE_MAC_JOB_OUT"], np.array(results, dtype=np.int64).reshape(m, n))
