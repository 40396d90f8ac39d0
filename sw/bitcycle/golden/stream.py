"""The AXI4-Stream contract of the BitCycle engine (``hw/rtl/bitcycle_top.sv``): how weights,
thresholds, activations, gradients and results are packed into stream words, and the golden
result of a whole engine job.

Everyone who talks to the engine uses exactly these functions: the cocotb testbenches, the
driver's "sim" backend and the PYNQ backend (whose DMA buffers are the bytes of these words).
numpy only, so it runs on a board image.

Geometry
--------
The engine has ``pe`` rows × ``simd`` lanes (both powers of two, each ≤ the stream width), a
stream of ``data_width`` = 32 or 64 bits (one word per beat, little-endian bytes), and
``thr_max`` threshold slots per output channel. The layer's binary weight W is [M, K]; the batch
has N columns. Registers M, K, N always name the *layer's* dimensions, in every mode.

Jobs (register MODE) and their streams — one AXI-Stream packet per job in, TLAST on the last
input word, and (compute modes) one packet out, TLAST on the last output word:

==================  ===========================================  ==============================
mode                input packet                                  output packet
==================  ===========================================  ==============================
LOAD_WEIGHTS (3)    W tiles                                       —
LOAD_THRESHOLDS (4) threshold groups of the M output channels     —
FORWARD (0)         x [K, N]: N vectors of K (bits planes each)   y = W·x [M, N]: N vectors of M
BACKWARD_DATA (1)   dy [M, N]: N vectors of M                     dx = Wᵀ·dy [K, N]: N vectors of K
BACKWARD_WEIGHT (2) sign(x) [K, N] tiles, then dy [M, N]: M       dW = dy·sign(x)ᵀ [M, K]: M
                    vectors dy[m, :] of N                         vectors dW[m, :] of K
==================  ===========================================  ==============================

Word formats:

* **Binary tiles** (W in LOAD_WEIGHTS, sign(x) in BACKWARD_WEIGHT): the binary matrix B [R, C]
  is cut into tiles of ``pe`` rows × ``simd`` columns, tile (g, c) for g over ⌈R/pe⌉ (outer) and
  c over ⌈C/simd⌉ (inner). A tile is a ``pe·simd``-bit number whose bit ``i·simd + j`` is 1 when
  B[g·pe+i, c·simd+j] = +1 (0 for −1 and for padding), sent LSB first as ⌈pe·simd/data_width⌉
  words.
* **Thresholds** [M, thr_max] int32: group g holds channels g·pe … g·pe+pe−1; slot
  ``i·thr_max + t`` (32 bits each) is thr[g·pe+i, t]; the group is ⌈pe·thr_max·32/data_width⌉
  words, LSB first. An output channel's value is the number of its thresholds that the saturated
  accumulator reaches (``acc ≥ thr``); pad unused slots with 2³¹−1.
* **Integer vectors** (x, dy): each of the vector's values is cut into bit-planes (two's
  complement, or the bipolar code 1 ↦ +1, 0 ↦ −1 when bits = 1). For plane p from the MSB
  (bits−1) down to 0, for chunk c over ⌈len/chunk⌉: one word whose bit j is plane p of
  value c·chunk + j (0 past the end). ``chunk`` = ``simd`` in FORWARD and BACKWARD_WEIGHT, ``pe``
  in BACKWARD_DATA (the array reads W transposed: the reduction runs over its rows).
  A vector costs bits·⌈len/chunk⌉ words: the array consumes one plane-chunk per cycle.
* **Results**: ``res_bits`` = 32, 16 or 8 bits per result (register OUT_CFG.RES_W), so
  per = data_width/res_bits results per word; each output vector is ⌈rows/per⌉ words, field f
  (bits f·res_bits …) of word w = value w·per + f, two's complement (0 padding at the end of each
  vector). TKEEP marks the packet's last beat per byte: the bytes of its real fields.
  RAW results are saturated to ``acc_bits`` and the engine refuses acc_bits > res_bits
  (ERROR.BAD_RES_W), so a field never truncates; CLIP8 and THRESHOLD fit 8 bits.
  :func:`result_bits` is the narrowest width that holds a job's results.

The output stage (register OUT_CFG) turns the exact sum into the value sent: RAW = saturated to
the signed ``acc_bits`` range (the golden ``acc_bits``), CLIP8 = clip(sat >> clip_shift, −128,
127) (arithmetic shift, Vorabbi et al.'s 8-bit inter-layer data), THRESHOLD = count of the
channel's thresholds reached by sat (FORWARD only: BatchNorm + sign folded into integers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bitcycle.golden.bitserial import bit_planes, bitserial_matmul, check_binary, check_bits, check_ints, saturate

# The mode and output-select codes, generated from hw/regs/bitcycle.rdl (re-exported: st.MODE_FORWARD)
from bitcycle.hwif.codes import (  # noqa: F401
    COMPUTE_MODES,
    MODE_BACKWARD_DATA,
    MODE_BACKWARD_WEIGHT,
    MODE_FORWARD,
    MODE_LOAD_THRESHOLDS,
    MODE_LOAD_WEIGHTS,
    OUT_CLIP8,
    OUT_RAW,
    OUT_THRESHOLD,
    RES_W8,
    RES_W16,
    RES_W32,
)


THRESHOLD_PAD = (1 << 31) - 1

# bits per result <-> the OUT_CFG.RES_W code
RES_W_CODES = {32: RES_W32, 16: RES_W16, 8: RES_W8}


def res_w_code(res_bits: int) -> int:
    """The OUT_CFG.RES_W code of ``res_bits`` bits per result."""
    if res_bits not in RES_W_CODES:
        raise ValueError(f"results are 8, 16 or 32 bits wide, got {res_bits}")
    return RES_W_CODES[res_bits]


def result_bits(out_sel: int, acc_bits: int) -> int:
    """The narrowest result width (8, 16, 32) that holds every value of a job: RAW values are
    saturated to ``acc_bits`` (pick acc_bits from :mod:`bitcycle.golden.accwidth` and the value is
    exact), CLIP8 is int8, THRESHOLD counts at most 15."""
    if out_sel in (OUT_CLIP8, OUT_THRESHOLD):
        return 8
    if out_sel != OUT_RAW:
        raise ValueError(f"unknown out_sel {out_sel}")
    if not 2 <= acc_bits <= 32:
        raise ValueError(f"acc_bits must be in 2..32, got {acc_bits}")
    return next(w for w in (8, 16, 32) if acc_bits <= w)


@dataclass(frozen=True)
class Geometry:
    """The engine's build parameters that the stream format depends on."""

    pe: int = 4
    simd: int = 16
    data_width: int = 32
    thr_max: int = 1

    def __post_init__(self) -> None:
        for name in ("pe", "simd"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two, got {v}")
        if self.data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64, got {self.data_width}")
        if max(self.pe, self.simd) > self.data_width:
            raise ValueError(f"pe and simd must be <= data_width={self.data_width} (one plane-chunk per word)")
        if self.thr_max < 1:
            raise ValueError(f"thr_max must be >= 1, got {self.thr_max}")

    @property
    def lanes(self) -> int:
        """int32 results per output word."""
        return self.data_width // 32

    @property
    def tile_words(self) -> int:
        return -(-self.pe * self.simd // self.data_width)

    @property
    def threshold_words(self) -> int:
        return -(-self.pe * self.thr_max * 32 // self.data_width)

    def chunk(self, mode: int) -> int:
        return self.pe if mode == MODE_BACKWARD_DATA else self.simd


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _split(value: int, n_words: int, width: int) -> list[int]:
    mask = (1 << width) - 1
    return [(value >> (i * width)) & mask for i in range(n_words)]


def pack_binary_tiles(binary, geo: Geometry) -> np.ndarray:
    """Binary matrix [R, C] of ±1 → tile words (uint64), see the module doc."""
    b = check_binary(binary)
    r, c = b.shape
    words: list[int] = []
    for g in range(_ceil(r, geo.pe)):
        for cc in range(_ceil(c, geo.simd)):
            tile = 0
            block = b[g * geo.pe:(g + 1) * geo.pe, cc * geo.simd:(cc + 1) * geo.simd]
            for i, j in zip(*np.nonzero(block > 0)):
                tile |= 1 << (int(i) * geo.simd + int(j))
            words += _split(tile, geo.tile_words, geo.data_width)
    return np.array(words, dtype=np.uint64)


def pack_thresholds(thresholds, geo: Geometry) -> np.ndarray:
    """Thresholds [M, T ≤ thr_max] int32 → group words; missing slots padded with 2³¹−1."""
    thr = np.asarray(thresholds)
    if thr.ndim != 2 or not np.issubdtype(thr.dtype, np.integer):
        raise ValueError(f"thresholds must be a 2-D integer array [M, T], got {thr.dtype} {thr.shape}")
    if thr.shape[1] > geo.thr_max:
        raise ValueError(f"{thr.shape[1]} thresholds per channel but the engine has thr_max={geo.thr_max}")
    if thr.size and (thr.min() < -(1 << 31) or thr.max() > THRESHOLD_PAD):
        raise ValueError("thresholds must fit in int32")
    m = thr.shape[0]
    full = np.full((m, geo.thr_max), THRESHOLD_PAD, dtype=np.int64)
    full[:, : thr.shape[1]] = thr
    words: list[int] = []
    for g in range(_ceil(m, geo.pe)):
        group = 0
        for i in range(geo.pe):
            for t in range(geo.thr_max):
                v = int(full[g * geo.pe + i, t]) if g * geo.pe + i < m else THRESHOLD_PAD
                group |= (v & 0xFFFFFFFF) << (32 * (i * geo.thr_max + t))
        words += _split(group, geo.threshold_words, geo.data_width)
    return np.array(words, dtype=np.uint64)


def pack_vectors(ints, bits: int, chunk: int) -> np.ndarray:
    """Integer matrix [L, V] → the words of its V column vectors (planes MSB first, chunks inner)."""
    bits = check_bits(bits)
    x = check_ints(ints, bits)
    length, n_vec = x.shape
    planes = bit_planes(x, bits)  # [bits, L, V]
    n_chunks = _ceil(length, chunk)
    pad = np.zeros((bits, n_chunks * chunk, n_vec), dtype=np.uint64)
    pad[:, :length, :] = planes
    weights = np.array([1 << j for j in range(chunk)], dtype=np.uint64)
    # words[v, p', c] = Σ_j plane[p, c·chunk + j, v] << j, with p' = bits−1−p (MSB first)
    chunks = pad.reshape(bits, n_chunks, chunk, n_vec)
    words = np.einsum("pcjv,j->vpc", chunks, weights).astype(np.uint64)
    return words[:, ::-1, :].reshape(-1).copy()


def pack_input(mode: int, geo: Geometry, bits: int, ints=None, binary=None, thresholds=None) -> np.ndarray:
    """The whole input packet of one job.

    LOAD_WEIGHTS: binary = W [M, K]. LOAD_THRESHOLDS: thresholds [M, T]. FORWARD: ints = x [K, N].
    BACKWARD_DATA: ints = dy [M, N]. BACKWARD_WEIGHT: binary = sign(x) [K, N], ints = dy [M, N].
    """
    if mode == MODE_LOAD_WEIGHTS:
        return pack_binary_tiles(binary, geo)
    if mode == MODE_LOAD_THRESHOLDS:
        return pack_thresholds(thresholds, geo)
    if mode in (MODE_FORWARD, MODE_BACKWARD_DATA):
        return pack_vectors(ints, bits, geo.chunk(mode))
    if mode == MODE_BACKWARD_WEIGHT:
        dy = check_ints(ints, check_bits(bits))
        return np.concatenate([pack_binary_tiles(binary, geo), pack_vectors(dy.T, bits, geo.simd)])
    raise ValueError(f"unknown mode {mode}")


def input_words(mode: int, geo: Geometry, m: int, k: int, n: int, bits: int) -> int:
    """Length of the input packet the engine expects (a different length sets an error bit)."""
    if mode == MODE_LOAD_WEIGHTS:
        return _ceil(m, geo.pe) * _ceil(k, geo.simd) * geo.tile_words
    if mode == MODE_LOAD_THRESHOLDS:
        return _ceil(m, geo.pe) * geo.threshold_words
    if mode == MODE_FORWARD:
        return n * bits * _ceil(k, geo.simd)
    if mode == MODE_BACKWARD_DATA:
        return n * bits * _ceil(m, geo.pe)
    if mode == MODE_BACKWARD_WEIGHT:
        return _ceil(k, geo.pe) * _ceil(n, geo.simd) * geo.tile_words + m * bits * _ceil(n, geo.simd)
    raise ValueError(f"unknown mode {mode}")


def output_shape(mode: int, m: int, k: int, n: int) -> tuple[int, int]:
    """(rows per output vector, number of vectors)."""
    return {MODE_FORWARD: (m, n), MODE_BACKWARD_DATA: (k, n), MODE_BACKWARD_WEIGHT: (k, m)}[mode]


def results_per_word(geo: Geometry, res_bits: int = 32) -> int:
    res_w_code(res_bits)
    return geo.data_width // res_bits


def output_words(mode: int, geo: Geometry, m: int, k: int, n: int, res_bits: int = 32) -> int:
    if mode not in COMPUTE_MODES:
        return 0
    rows, n_vec = output_shape(mode, m, k, n)
    return n_vec * _ceil(rows, results_per_word(geo, res_bits))


def output_last_bytes(mode: int, geo: Geometry, m: int, k: int, n: int, res_bits: int = 32) -> int:
    """Bytes TKEEP marks on the output packet's last beat (its real fields)."""
    rows, _ = output_shape(mode, m, k, n)
    per = results_per_word(geo, res_bits)
    return ((rows - 1) % per + 1) * res_bits // 8


def unpack_output(words, mode: int, geo: Geometry, m: int, k: int, n: int, res_bits: int = 32) -> np.ndarray:
    """Output words → the result matrix: y [M, N], dx [K, N] or dW [M, K] (int64)."""
    rows, n_vec = output_shape(mode, m, k, n)
    per = results_per_word(geo, res_bits)
    per_vec = _ceil(rows, per)
    w = np.asarray(words, dtype=np.uint64)
    if w.size != n_vec * per_vec:
        raise ValueError(f"expected {n_vec * per_vec} output words for this job, got {w.size}")
    mask = np.uint64((1 << res_bits) - 1)
    fields = np.stack([(w >> np.uint64(res_bits * i)) & mask for i in range(per)], axis=-1)
    vals = fields.astype(np.int64).reshape(n_vec, per_vec * per)[:, :rows]
    vals = np.where(vals >= 1 << (res_bits - 1), vals - (1 << res_bits), vals)
    return vals if mode == MODE_BACKWARD_WEIGHT else vals.T.copy()


def pack_output(result, mode: int, geo: Geometry, res_bits: int = 32) -> np.ndarray:
    """The result matrix (as :func:`unpack_output` returns it) → the engine's output words."""
    vectors = np.asarray(result, dtype=np.int64)
    vectors = vectors if mode == MODE_BACKWARD_WEIGHT else vectors.T  # [n_vec, rows]
    per = results_per_word(geo, res_bits)
    lo, hi = -(1 << (res_bits - 1)), (1 << (res_bits - 1)) - 1
    if vectors.size and (vectors.min() < lo or vectors.max() > hi):
        raise ValueError(f"results outside the {res_bits}-bit range [{lo}, {hi}]: use a wider res_bits")
    n_vec, rows = vectors.shape
    pad = np.zeros((n_vec, _ceil(rows, per) * per), dtype=np.uint64)
    pad[:, :rows] = (vectors & ((1 << res_bits) - 1)).astype(np.uint64)
    fields = pad.reshape(n_vec, -1, per)
    words = np.zeros(fields.shape[:2], dtype=np.uint64)
    for f in range(per):
        words |= fields[:, :, f] << np.uint64(res_bits * f)
    return words.reshape(-1)


def words_to_bytes(words, geo: Geometry) -> bytes:
    """Words → the little-endian byte buffer a DMA sends."""
    dtype = "<u4" if geo.data_width == 32 else "<u8"
    return np.asarray(words, dtype=np.uint64).astype(dtype).tobytes()


def bytes_to_words(data: bytes, geo: Geometry) -> np.ndarray:
    """Byte buffer → words; a short last word (TKEEP drops the padding fields of the packet's last
    beat) is zero-padded."""
    dtype = "<u4" if geo.data_width == 32 else "<u8"
    data = bytes(data)
    nb = geo.data_width // 8
    if len(data) % nb:
        data += bytes(nb - len(data) % nb)
    return np.frombuffer(data, dtype=dtype).astype(np.uint64)


# --------------------------------------------------------------------------------------------
# Golden output stage and whole-job result


def clip8(values, shift: int = 0) -> np.ndarray:
    """Vorabbi-style clipping block: arithmetic right shift, then clamp to int8."""
    if not 0 <= shift <= 31:
        raise ValueError(f"clip shift must be in 0..31, got {shift}")
    return np.clip(np.asarray(values, dtype=np.int64) >> shift, -128, 127)


def threshold_count(values, thresholds) -> np.ndarray:
    """values [R, V], thresholds [R, T]: number of thresholds each value reaches (value ≥ thr)."""
    v = np.asarray(values, dtype=np.int64)
    t = np.asarray(thresholds, dtype=np.int64)
    return (v[:, None, :] >= t[:, :, None]).sum(axis=1).astype(np.int64)


def output_stage(acc, acc_bits: int, out_sel: int = OUT_RAW, clip_shift: int = 0, thresholds=None) -> np.ndarray:
    """The engine's output stage applied to exact sums [R, V] (rows = output channels)."""
    sat = saturate(np.asarray(acc, dtype=np.int64), acc_bits)
    if out_sel == OUT_RAW:
        return sat
    if out_sel == OUT_CLIP8:
        return clip8(sat, clip_shift)
    if out_sel == OUT_THRESHOLD:
        if thresholds is None:
            raise ValueError("OUT_THRESHOLD needs thresholds [M, T]")
        return threshold_count(sat, thresholds)
    raise ValueError(f"unknown out_sel {out_sel}")


def engine_job(mode: int, bits: int, acc_bits: int, binary=None, ints=None, *, weights=None,
               out_sel: int = OUT_RAW, clip_shift: int = 0, thresholds=None) -> np.ndarray:
    """What a compute job returns, from the golden bit-serial product.

    FORWARD: weights W [M,K], ints x [K,N] → y [M,N]. BACKWARD_DATA: weights W, ints dy [M,N] →
    dx [K,N]. BACKWARD_WEIGHT: binary sign(x) [K,N], ints dy [M,N] → dW [M,K].
    """
    if mode == MODE_FORWARD:
        acc = bitserial_matmul(weights, ints, bits)
        return output_stage(acc, acc_bits, out_sel, clip_shift, thresholds)
    if mode == MODE_BACKWARD_DATA:
        acc = bitserial_matmul(check_binary(weights).T, ints, bits)
        return output_stage(acc, acc_bits, out_sel, clip_shift, thresholds)
    if mode == MODE_BACKWARD_WEIGHT:
        acc = bitserial_matmul(binary, check_ints(ints, check_bits(bits)).T, bits)  # dWᵀ [K, M]
        return output_stage(acc, acc_bits, out_sel, clip_shift, thresholds).T.copy()
    raise ValueError(f"mode {mode} is not a compute mode")
