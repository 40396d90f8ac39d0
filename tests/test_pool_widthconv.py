"""golden.pool (±1 max-pool as an OR of bits) and golden.widthconv (bit-stream repacking): exact
against plain numpy on ±1 values / integer arithmetic; bad input is one clear error; the rule that
picks BitCycle's width converter over FINN's."""

from __future__ import annotations

import numpy as np
import pytest

from bitcycle.errors import BitCycleError
from bitcycle.golden.pool import binary_maxpool_nhwc, binary_maxpool_stream
from bitcycle.golden.widthconv import repack_bits


def test_maxpool_of_bits_is_the_max_of_the_pm1_values():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(7, 6, 5))
    pm1 = 2 * bits - 1
    want = pm1[:6].reshape(3, 2, 3, 2, 5).max(axis=(1, 3))  # 2×2 stride 2, the odd row dropped
    assert np.array_equal(2 * binary_maxpool_nhwc(bits, 2) - 1, want)


def test_stream_pool_reduces_runs_of_k2_beats():
    beats = np.array([[0, 0], [1, 0], [0, 0], [0, 0], [0, 1], [0, 1]])
    assert binary_maxpool_stream(beats, 3).tolist() == [[1, 0], [0, 1]]
    with pytest.raises(BitCycleError, match="not whole windows of k2=4"):
        binary_maxpool_stream(beats, 4)
    with pytest.raises(BitCycleError, match="bits 0/1"):
        binary_maxpool_stream(beats * 2, 3)


def test_repack_is_the_same_bit_stream():
    assert repack_bits([0x1, 0x2, 0x3, 0x4], 4, 8) == [0x21, 0x43]
    assert repack_bits([0x4321], 16, 4) == [1, 2, 3, 4]
    rng = np.random.default_rng(1)
    beats = [int(x) for x in rng.integers(0, 1 << 4, size=9)]  # 36 bits → two beats of 18
    out = repack_bits(beats, 4, 18)
    assert sum(b << (18 * j) for j, b in enumerate(out)) == sum(b << (4 * i) for i, b in enumerate(beats))
    assert repack_bits(out, 18, 4) == beats
    with pytest.raises(BitCycleError, match="not whole beats of 18 bits"):
        repack_bits(beats[:8], 4, 18)
    with pytest.raises(BitCycleError, match="beat 0 has bits above its 4"):
        repack_bits([16, 0], 4, 8)


def test_bitcycle_dwc_replaces_finn_s_only_where_vpc_fails():
    from bitcycle.compile.dwc_op import VPC_MAX_ELEMS, vpc_elements

    # measured with Verilator 5.048 --lint-only on finn-rtllib dwc_axi.sv + vpc.sv
    for ibits, obits in ((1, 300), (1, 512), (2, 1024), (3, 512), (512, 1)):
        assert vpc_elements(ibits, obits) > VPC_MAX_ELEMS
    for ibits, obits in ((2, 512), (4, 1024), (1, 256), (4, 512), (4, 18)):
        assert vpc_elements(ibits, obits) <= VPC_MAX_ELEMS
