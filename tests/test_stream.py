"""Unit tests of the engine's stream contract (bitcycle.golden.stream)."""

import numpy as np
import pytest

from bitcycle.golden import bitserial_matmul
from bitcycle.golden import stream as st


def test_tile_bits_by_hand():
    geo = st.Geometry(pe=2, simd=4, data_width=32)
    w = np.array([[1, -1, -1, 1, 1], [-1, 1, -1, -1, -1]], dtype=np.int8)  # [2, 5] -> tiles (0,0), (0,1)
    words = st.pack_binary_tiles(w, geo)
    # tile (0,0): row0 bits 0,3 ; row1 bit 1 -> bit 4+1=5
    assert words.tolist() == [0b100001 | 0b1000, 0b1]


def test_vectors_planes_msb_first():
    # x = [[3], [-2], [1]] at 3 bits, chunk 2: two's complement 011, 110, 001
    words = st.pack_vectors(np.array([[3], [-2], [1]]), 3, 2)
    # plane2: (0,1),(0) ; plane1: (1,1),(0) ; plane0: (1,0),(1)
    assert words.tolist() == [0b10, 0b0, 0b11, 0b0, 0b01, 0b1]


def test_bipolar_plane():
    assert st.pack_vectors(np.array([[1], [-1], [1]]), 1, 4).tolist() == [0b101]


def test_thresholds_words():
    geo = st.Geometry(pe=2, simd=4, data_width=64, thr_max=2)
    words = st.pack_thresholds(np.array([[5], [-1], [7]]), geo)
    pad = st.THRESHOLD_PAD
    assert words.tolist() == [5 | (pad << 32), 0xFFFFFFFF | (pad << 32), 7 | (pad << 32), pad | (pad << 32)]


@pytest.mark.parametrize("dw", [32, 64])
def test_output_roundtrip(dw):
    geo = st.Geometry(pe=4, simd=8, data_width=dw)
    rng = np.random.default_rng(1)
    y = rng.integers(-(1 << 31), 1 << 31, size=(5, 3))
    lanes = y.T.reshape(3, 5)
    words = []
    for v in lanes:
        vals = list(v) + [0] * (-len(v) % geo.lanes)
        for i in range(0, len(vals), geo.lanes):
            words.append(sum((int(x) & 0xFFFFFFFF) << (32 * j) for j, x in enumerate(vals[i:i + geo.lanes])))
    got = st.unpack_output(np.array(words, dtype=np.uint64), st.MODE_FORWARD, geo, 5, 7, 3)
    assert np.array_equal(got, y)
    assert st.bytes_to_words(st.words_to_bytes(words, geo), geo).tolist() == words


@pytest.mark.parametrize("mode", [0, 1, 2, 3, 4])
def test_input_length_matches(mode):
    geo = st.Geometry(pe=4, simd=8, data_width=32, thr_max=2)
    rng = np.random.default_rng(mode)
    m, k, n, bits = 9, 13, 5, 3
    w = rng.choice([-1, 1], size=(m, k)).astype(np.int8)
    sx = rng.choice([-1, 1], size=(k, n)).astype(np.int8)
    x = rng.integers(-4, 4, size=(k, n))
    dy = rng.integers(-4, 4, size=(m, n))
    kw = {0: dict(ints=x), 1: dict(ints=dy), 2: dict(ints=dy, binary=sx), 3: dict(binary=w),
          4: dict(thresholds=rng.integers(-9, 9, size=(m, 2)))}[mode]
    assert len(st.pack_input(mode, geo, bits, **kw)) == st.input_words(mode, geo, m, k, n, bits)


def test_engine_job_modes_agree_with_matmul():
    rng = np.random.default_rng(3)
    w = rng.choice([-1, 1], size=(6, 10)).astype(np.int8)
    sx = rng.choice([-1, 1], size=(10, 4)).astype(np.int8)
    dy = rng.integers(-8, 8, size=(6, 4))
    x = rng.integers(-8, 8, size=(10, 4))
    assert np.array_equal(st.engine_job(0, 4, 32, ints=x, weights=w), w.astype(np.int64) @ x)
    assert np.array_equal(st.engine_job(1, 4, 32, ints=dy, weights=w), w.T.astype(np.int64) @ dy)
    assert np.array_equal(st.engine_job(2, 4, 32, binary=sx, ints=dy), dy @ sx.T.astype(np.int64))
    assert np.array_equal(st.engine_job(2, 4, 32, binary=sx, ints=dy).T, bitserial_matmul(sx, dy.T, 4))


def test_output_stage():
    acc = np.array([[300, -300, 5], [1, 2, 3]])
    assert st.output_stage(acc, 8).tolist() == [[127, -128, 5], [1, 2, 3]]
    assert st.output_stage(acc, 16, st.OUT_CLIP8, 1).tolist() == [[127, -128, 2], [0, 1, 1]]
    thr = np.array([[0, 10], [2, 3]])
    assert st.output_stage(acc, 16, st.OUT_THRESHOLD, thresholds=thr).tolist() == [[2, 0, 1], [0, 1, 2]]


def test_packed_results_by_hand():
    """8-bit results on a 32-bit stream: four per word, vector-aligned, two's complement fields."""
    geo = st.Geometry(pe=4, simd=8, data_width=32)
    y = np.array([[1, -1], [-128, 127], [5, 0], [-2, 3], [9, -9]])  # [M=5, N=2]
    words = st.pack_output(y, st.MODE_FORWARD, geo, 8)
    assert words.tolist() == [0x01 | 0x80 << 8 | 0x05 << 16 | 0xFE << 24, 0x09,
                              0xFF | 0x7F << 8 | 0x00 << 16 | 0x03 << 24, 0xF7]
    assert st.output_words(st.MODE_FORWARD, geo, 5, 7, 2, 8) == 4
    assert st.output_last_bytes(st.MODE_FORWARD, geo, 5, 7, 2, 8) == 1
    assert np.array_equal(st.unpack_output(words, st.MODE_FORWARD, geo, 5, 7, 2, 8), y)


@pytest.mark.parametrize("dw", [32, 64])
@pytest.mark.parametrize("res_bits", [8, 16, 32])
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_packed_roundtrip(dw, res_bits, mode):
    geo = st.Geometry(pe=4, simd=8, data_width=dw)
    rng = np.random.default_rng(res_bits + dw + mode)
    m, k, n = 7, 5, 3
    shape = {0: (m, n), 1: (k, n), 2: (m, k)}[mode]
    y = rng.integers(-(1 << (res_bits - 1)), 1 << (res_bits - 1), size=shape)
    words = st.pack_output(y, mode, geo, res_bits)
    rows = {0: m, 1: k, 2: k}[mode]
    per = dw // res_bits
    assert words.size == st.output_words(mode, geo, m, k, n, res_bits) == -(-rows // per) * shape[1 if mode < 2 else 0]
    assert np.array_equal(st.unpack_output(words, mode, geo, m, k, n, res_bits), y)
    with pytest.raises(ValueError, match="wider res_bits"):
        st.pack_output(y + (1 << (res_bits - 1)) * (y >= 0), mode, geo, res_bits)


def test_result_bits_rule():
    assert [st.result_bits(st.OUT_RAW, a) for a in (2, 8, 9, 16, 17, 32)] == [8, 8, 16, 16, 32, 32]
    assert st.result_bits(st.OUT_CLIP8, 32) == 8 and st.result_bits(st.OUT_THRESHOLD, 24) == 8
    with pytest.raises(ValueError):
        st.res_w_code(12)
