"""The engine's cycle model (bitcycle.golden.cycles), the one the bench, the driver's emu backend
and the FINN custom op call: exact values on hand-counted shapes."""

import pytest

from bitcycle.golden.cycles import CycleModel, array_cycles, signx_tiles
from bitcycle.hwif.codes import Mode


def test_array_cycles_count_plane_chunks():
    # FORWARD W[64, 256] at 4x16, 8 vectors, 2 bits: 2 planes x 16 row tiles x 16 chunks x 8 vectors
    assert array_cycles(Mode.FORWARD, 2, 64, 256, 8, 4, 16) == 2 * 16 * 16 * 8 == 4096
    # BACKWARD_DATA walks the same W tiles (transposed): same count
    assert array_cycles(Mode.BACKWARD_DATA, 2, 64, 256, 8, 4, 16) == 4096
    # BACKWARD_WEIGHT: sign(x)[K=64, N=256] tiles (16 x 16) x M=8 vectors of dy x 3 bits
    assert array_cycles(Mode.BACKWARD_WEIGHT, 3, 8, 64, 256, 4, 16) == 3 * 16 * 16 * 8 == 6144
    # partial tiles round up: M=5 on PE=4 is 2 row tiles, K=17 on SIMD=16 is 2 chunks
    assert array_cycles(Mode.FORWARD, 1, 5, 17, 1, 4, 16) == 4
    assert signx_tiles(5, 17, 4, 16) == 4


def test_cycle_model_adds_latency_loads_and_sign_tiles():
    model = CycleModel(pe=4, simd=16, latency=8)
    assert model.cycles(Mode.FORWARD, 2, 64, 256, 8) == 4096 + 8
    assert model.cycles(Mode.BACKWARD_WEIGHT, 3, 8, 64, 256) == 16 * 16 + 6144 + 8
    assert model.cycles(Mode.LOAD_WEIGHTS, 1, 64, 256, 1, words_in=256) == 256 + 8
    assert model.cycles(Mode.LOAD_THRESHOLDS, 1, 64, 1, 1, words_in=16) == 16 + 8


def test_load_modes_have_no_array_cycles():
    with pytest.raises(ValueError, match="not a compute mode"):
        array_cycles(Mode.LOAD_WEIGHTS, 1, 4, 16, 1, 4, 16)
