"""cocotb testbench of hw/rtl/bitcycle_maxpool.sv: random ±1 feature maps in FINN's depthwise
sliding-window order ([pixel, channel fold, window position, PE]) under random input gaps and
output backpressure; every output beat equals bitcycle.golden.pool's max-pool of the feature map
(and of the stream); one input beat per cycle when the output is always ready; the protocol
monitor checks the output side (TVALID held, TDATA stable until taken).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import cocotb

from finn_stream import start, stream_through
from bitcycle.golden.pool import binary_maxpool_nhwc, binary_maxpool_stream
from bitcycle.hwif.rtl import rtl_sources


def window_stream(fmap: np.ndarray, k: int, pe: int) -> np.ndarray:
    """[h, w, c] bits → FINN's depthwise SWG order for a k×k stride-k window: [beats, pe]."""
    h, w, c = fmap.shape
    oh, ow = h // k, w // k
    win = fmap[:oh * k, :ow * k].reshape(oh, k, ow, k, c // pe, pe).transpose(0, 2, 4, 1, 3, 5)
    return win.reshape(-1, pe)


def _word(bits) -> int:
    return sum(int(b) << j for j, b in enumerate(bits))


@cocotb.test()
async def pools_like_the_golden_model(dut):
    pe, k2 = int(dut.PE.value), int(dut.K2.value)
    k = int(round(k2 ** 0.5))
    assert k * k == k2, "the testbench drives square windows"
    rng = random.Random(cocotb.RANDOM_SEED)
    nrng = np.random.default_rng(cocotb.RANDOM_SEED)
    mon = await start(dut)
    c = 2 * pe
    for gap, bp, density in ((0.0, 0.0, 0.5), (0.3, 0.3, 0.5), (0.5, 0.7, 0.1), (0.2, 0.5, 0.9)):
        fmap = (nrng.random((2 * k + 1, 3 * k, c)) < density).astype(np.int64)  # odd height: a row dropped
        stream = window_stream(fmap, k, pe)
        want = binary_maxpool_nhwc(fmap, k).reshape(-1, pe)
        assert (binary_maxpool_stream(stream, k2) == want).all()
        got, cycles = await stream_through(dut, rng, [_word(b) for b in stream], len(want), gap, bp)
        assert got == [_word(w) for w in want], f"gap {gap} bp {bp}: pooled beats differ from the golden model"
        if gap == 0 and bp == 0:
            assert cycles <= len(stream) + 3, f"not one beat per cycle: {cycles} cycles for {len(stream)} beats"
    assert mon.beats > 0 and not mon.violations


@pytest.mark.rtl
@pytest.mark.parametrize("pe,k2", [(4, 4), (3, 9)])
def test_bitcycle_maxpool(pe, k2):
    import rtl_runner

    rtl_runner.run("bitcycle_maxpool", rtl_sources("bitcycle_maxpool"), "test_bitcycle_maxpool",
                   parameters={"PE": pe, "K2": k2}, tag=f"pe{pe}k{k2}")
