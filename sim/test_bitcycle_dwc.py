"""cocotb testbench of hw/rtl/bitcycle_dwc.sv: random beats (padding bits above IBITS set, which
must be ignored) under random input gaps and output backpressure; every output beat equals
bitcycle.golden.widthconv's repacking of the bit stream (padding 0); the faster side moves one beat
per cycle when the stream flows; the protocol monitor checks the output side. One case per
structure: gather (OBITS = R·IBITS), scatter (IBITS = R·OBITS), bit buffer (neither).
"""

from __future__ import annotations

import math
import random

import pytest

import cocotb

from finn_stream import start, stream_through
from bitcycle.golden.widthconv import repack_bits
from bitcycle.hwif.rtl import rtl_sources


@cocotb.test()
async def repacks_like_the_golden_model(dut):
    ibits, obits = int(dut.IBITS.value), int(dut.OBITS.value)
    iw = (ibits + 7) // 8 * 8
    rng = random.Random(cocotb.RANDOM_SEED)
    mon = await start(dut)
    unit = math.lcm(ibits, obits) // ibits  # input beats per whole number of output beats
    for gap, bp in ((0.0, 0.0), (0.3, 0.3), (0.6, 0.1), (0.1, 0.8)):
        n_in = unit * rng.randint(3, 6)
        data = [rng.getrandbits(ibits) for _ in range(n_in)]
        pad = [rng.getrandbits(iw - ibits) << ibits if iw > ibits else 0 for _ in range(n_in)]
        want = repack_bits(data, ibits, obits)
        got, cycles = await stream_through(dut, rng, [d | p for d, p in zip(data, pad)], len(want), gap, bp)
        assert got == want, f"gap {gap} bp {bp}: repacked beats differ from the golden model"
        if gap == 0 and bp == 0:
            assert cycles <= max(n_in, len(want)) + 3, f"{cycles} cycles for {n_in} beats in, {len(want)} out"
    assert mon.beats > 0 and not mon.violations


@pytest.mark.rtl
@pytest.mark.parametrize("ibits,obits", [(4, 512), (72, 8), (4, 18), (18, 4)])
def test_bitcycle_dwc(ibits, obits):
    import rtl_runner

    rtl_runner.run("bitcycle_dwc", rtl_sources("bitcycle_dwc"), "test_bitcycle_dwc",
                   parameters={"IBITS": ibits, "OBITS": obits}, tag=f"i{ibits}o{obits}")
