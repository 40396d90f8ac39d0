"""cocotb module of `bitcycle bench hw`: runs the jobs listed in $BITCYCLE_BENCH_POINTS (JSON) on
bitcycle_engine, checks each result bit-exact against bitcycle.golden, and writes the measured
cycle counts (the engine's own start-to-done counter) and the simulator speed to
$BITCYCLE_BENCH_OUT. No stream gaps, no backpressure: the engine's best case.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

import cocotb
from cocotb.utils import get_sim_time

from bitcycle.golden import stream as st
from bitcycle_tb import EngineTB, rand_binary, rand_ints


@cocotb.test()
async def measure(dut):
    points = json.loads(os.environ["BITCYCLE_BENCH_POINTS"])
    rng = np.random.default_rng(int(os.environ.get("BITCYCLE_BENCH_SEED", "1")))
    tb = EngineTB(dut)
    await tb.start_clock_and_reset()
    loaded = None
    results = []
    wall0, cpu0, sim0 = time.perf_counter(), time.process_time(), get_sim_time("ns")
    for p in points:
        mode, bits, m, k, n = p["mode"], p["bits"], p["m"], p["k"], p["n"]
        if mode in (st.MODE_FORWARD, st.MODE_BACKWARD_DATA) and loaded != (m, k):
            w = rand_binary(rng, (m, k))
            await tb.load_weights(w)
            loaded = (m, k)
        t0, c0, s0 = time.perf_counter(), time.process_time(), get_sim_time("ns")
        kw = dict(acc_bits=p.get("acc_bits"), res_bits=p.get("res_bits", 32))  # results as wide as asked
        if mode == st.MODE_FORWARD:
            res = await tb.compute(mode, bits, w=w, x=rand_ints(rng, bits, (k, n)), **kw)
        elif mode == st.MODE_BACKWARD_DATA:
            res = await tb.compute(mode, bits, w=w, dy=rand_ints(rng, bits, (m, n)), **kw)
        else:
            res = await tb.compute(mode, bits, dy=rand_ints(rng, bits, (m, n)), sx=rand_binary(rng, (k, n)), **kw)
        sim_cycles = (get_sim_time("ns") - s0) / 10
        results.append({**p, "cycles": res.cycles, "bit_exact": True, "sim_cycles": sim_cycles,
                        "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0})
    total = {"sim_cycles": (get_sim_time("ns") - sim0) / 10, "wall_s": time.perf_counter() - wall0,
             "cpu_s": time.process_time() - cpu0}
    with open(os.environ["BITCYCLE_BENCH_OUT"], "w") as f:
        json.dump({"points": results, "total": total}, f)
