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
from cocotb.triggers import ClockCycles

from mac_driver import collect_results, feed_dot, start_and_reset


@cocotb.test()
async def run_job(dut):
    job = np.load(os.environ["BITCYCLE_MAC_JOB"])
    binary, ints, bits = job["binary"], job["ints"], int(job["bits"])
    await start_and_reset(dut)
    dut.bits_i.value = bits
    results: list[int] = []
    collect_results(dut, results)
    for row in binary:
        for col in ints.T:
            await feed_dot(dut, row, col, bits)
    await ClockCycles(dut.clk_i, 3)
    m, n = binary.shape[0], ints.shape[1]
    assert len(results) == m * n, f"expected {m * n} results, got {len(results)}"
    np.save(os.environ["BITCYCLE_MAC_JOB_OUT"], np.array(results, dtype=np.int64).reshape(m, n))
