"""cocotb testbench of hw/rtl/bitcycle_cfg_check.sv (two register stages: each configuration is held
for CHECK_LAT clock edges, then the outputs are read): random and edge configurations
(every mode code, bits 0..31, zero and oversized shapes, acc_bits, out_sel and res_w at their limits,
and every reduction length at the overflow boundary of each bit-width: len·2^(b−1) just inside and
just outside ACC_BITS) against a Python statement of the engine's rules; error bits and the job
geometry compared. Three builds: ACC_BITS 20, 32 (no 16-bit length overflows below 16 bits) and 8
(most do). The bit names are the register map's (bitcycle.hwif.regmap.ERROR_BITS)."""

from __future__ import annotations

import random

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from bitcycle.golden import stream as st
from bitcycle.hwif import regmap
from bitcycle.hwif.codes import MODE_LAST
from bitcycle.hwif.rtl import rtl_sources

PARAMS = dict(PE=4, SIMD=8, ACC_BITS=20, DATA_W=32, THR_MAX=2, WMEM_DEPTH=24, AMEM_DEPTH=12, TMEM_DEPTH=5,
              MAX_CHUNKS=8)
CHECK_LAT = 2  # clock edges from a configuration to its check (the RTL's CheckLat)
CONFIGS = {"p4s8": PARAMS, "acc32": {**PARAMS, "ACC_BITS": 32}, "acc8": {**PARAMS, "ACC_BITS": 8}}


def _ceil(a, b):
    return -(-a // b)


def model(p, mode, bits, m, k, n, acc_bits, out_sel, res_w):
    pe, simd = p["PE"], p["SIMD"]
    m_pe, k_pe, k_simd, n_simd = _ceil(m, pe), _ceil(k, pe), _ceil(k, simd), _ceil(n, simd)
    compute = mode in st.COMPUTE_MODES
    red_len = {st.MODE_BACKWARD_DATA: m, st.MODE_BACKWARD_WEIGHT: n}.get(mode, k)
    n_red = {st.MODE_BACKWARD_DATA: m_pe, st.MODE_BACKWARD_WEIGHT: n_simd}.get(mode, k_simd)
    w_tiles, a_tiles = m_pe * k_simd, k_pe * n_simd
    bad_bits = not 1 <= bits <= 16
    worst = red_len if bits <= 1 else red_len << (bits - 1)
    err = {name: False for name in regmap.ERROR_BITS}
    err["BAD_MODE"] = mode > MODE_LAST
    err["BAD_BITS"] = compute and bad_bits
    err["BAD_ACC_BITS"] = compute and not 2 <= acc_bits <= p["ACC_BITS"]
    err["BAD_OUT_SEL"] = compute and (out_sel == 3 or (out_sel == st.OUT_THRESHOLD and mode != st.MODE_FORWARD))
    res_bits = {code: bits for bits, code in st.RES_W_CODES.items()}.get(res_w, 0)
    # (W32 never truncates: acc_bits > 32 is BAD_ACC_BITS already)
    err["BAD_RES_W"] = compute and (res_bits == 0 or (out_sel == st.OUT_RAW and res_bits < 32 and acc_bits > res_bits))
    if compute:
        shape = (0 in (m, k, n) or n_red > p["MAX_CHUNKS"] or (mode != st.MODE_BACKWARD_WEIGHT and w_tiles > p["WMEM_DEPTH"])
                 or (mode == st.MODE_BACKWARD_WEIGHT and a_tiles > p["AMEM_DEPTH"])
                 or (mode == st.MODE_FORWARD and out_sel == st.OUT_THRESHOLD and m_pe > p["TMEM_DEPTH"]))
    elif mode == st.MODE_LOAD_WEIGHTS:
        shape = 0 in (m, k) or w_tiles > p["WMEM_DEPTH"]
    elif mode == st.MODE_LOAD_THRESHOLDS:
        shape = m == 0 or m_pe > p["TMEM_DEPTH"]
    else:
        shape = False
    err["BAD_SHAPE"] = shape
    err["OVERFLOW"] = compute and not bad_bits and worst > (1 << (p["ACC_BITS"] - 1)) - 1
    code = sum(1 << i for i, name in enumerate(regmap.ERROR_BITS) if err[name])
    load_tiles = m_pe if mode == st.MODE_LOAD_THRESHOLDS else (a_tiles if mode == st.MODE_BACKWARD_WEIGHT else w_tiles)
    return code, dict(n_red_o=n_red, vec_words_o=(bits * n_red) & ((1 << 21) - 1), load_tiles_o=load_tiles,
                      red_len_o=red_len, is_compute_o=int(compute))


@cocotb.test()
async def random_configurations(dut):
    seed = cocotb.RANDOM_SEED
    cocotb.log.info("RANDOM_SEED=%d", seed)
    rng = random.Random(seed)
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    p = {k: int(getattr(dut, k).value) for k in PARAMS}
    cases = []
    for mode in range(8):
        for bits in (0, 1, 2, 8, 16, 17, 31):
            cases.append((mode, bits, 4, 8, 2, p["ACC_BITS"], 0, 0))
    # the overflow boundary: len = 2^(ACC_BITS − b) − 1 fits, 2^(ACC_BITS − b) does not (b = max(bits, 1))
    red_dim = {st.MODE_FORWARD: 1, st.MODE_BACKWARD_DATA: 0, st.MODE_BACKWARD_WEIGHT: 2}
    for mode, which in red_dim.items():
        for bits in range(1, 17):
            edge = 1 << max(p["ACC_BITS"] - max(bits, 1), 0)
            for length in {edge - 1, edge, edge + 1, 1, 65535}:
                if 1 <= length <= 65535:
                    dims = [4, 8, 2]
                    dims[which] = length
                    cases.append((mode, bits, *dims, p["ACC_BITS"], 0, st.RES_W_CODES[32]))
    for _ in range(3000):
        dim = lambda: rng.choice([0, 1, rng.randint(1, 40), rng.randint(1, 200), 65535])  # noqa: E731
        cases.append((rng.randint(0, 7), rng.randint(0, 31), dim(), dim(), dim(), rng.randint(0, 63), rng.randint(0, 3),
                      rng.choice([0, 1, 2, 2, 3])))
    seen = set()
    for mode, bits, m, k, n, acc_bits, out_sel, res_w in cases:
        await FallingEdge(dut.clk_i)
        dut.mode_i.value, dut.bits_i.value = mode, bits
        dut.m_i.value, dut.k_i.value, dut.n_i.value = m, k, n
        dut.acc_bits_i.value, dut.out_sel_i.value, dut.res_w_i.value = acc_bits, out_sel, res_w
        for _ in range(CHECK_LAT):
            await RisingEdge(dut.clk_i)
        await ReadOnly()
        code, geo = model(p, mode, bits, m, k, n, acc_bits, out_sel, res_w)
        got = int(dut.err_o.value)
        assert got == code, f"mode={mode} bits={bits} m={m} k={k} n={n} acc={acc_bits} sel={out_sel} res_w={res_w}: {got:#x} != {code:#x}"
        seen.add(code)
        if code == 0:
            for name, value in geo.items():
                assert int(getattr(dut, name).value) == value, (name, mode, bits, m, k, n)
    assert len(seen) > 8, f"too few distinct error codes covered: {sorted(seen)}"


@pytest.mark.rtl
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_bitcycle_cfg_check(config):
    import rtl_runner

    rtl_runner.run("bitcycle_cfg_check", rtl_sources("bitcycle_cfg_check"), "test_bitcycle_cfg_check",
                   parameters=CONFIGS[config], tag=config)
