"""How the driver talks to the engine: register names, modes, packing, the cycle model
(:class:`bitcycle.golden.cycles.CycleModel`, re-exported).

The stream format is the engine's contract, :mod:`bitcycle.golden.stream` (owned with the RTL):
this module only adapts it to the driver (a :class:`~bitcycle.golden.stream.Geometry` from
driver.json's engine section) and names the registers. numpy only (runs on the board).

One engine job: program MODE, BITS, M, K, N (always the *layer's* W [M, K] and the batch N),
ACC_BITS, OUT_CFG (RES_W: results packed 8/16/32 bits wide, planning.result_widths); pulse
CTRL.START; send one input packet (TLAST on its last word) and receive the output packet; wait
for STATUS.DONE with a timeout; read CYCLES and ERROR.

    mode             input packet                       output
    LOAD_WEIGHTS     tiles of W [M, K]                  —
    FORWARD          x [K, N]                           y = W·x [M, N]
    BACKWARD_DATA    dy [M, N]                          dx = Wᵀ·dy [K, N]   (W read transposed)
    BACKWARD_WEIGHT  tiles of sign(x) [K, N], dy [M, N] dW = dy·sign(x)ᵀ [M, K]
"""

from __future__ import annotations

import numpy as np

from bitcycle.golden import stream as S
from bitcycle.golden.cycles import CycleModel  # noqa: F401  (the emu backend's clock: P.CycleModel)

# The job modes, CTRL/STATUS/ERROR bits, generated from hw/regs/bitcycle.rdl (re-exported: P.Mode, P.ERR_*)
from bitcycle.hwif.codes import (  # noqa: F401
    CTRL_ABORT,
    CTRL_START,
    ERR_BAD_ACC_BITS,
    ERR_BAD_BITS,
    ERR_BAD_MODE,
    ERR_BAD_OUT_SEL,
    ERR_BAD_RES_W,
    ERR_BAD_SHAPE,
    ERR_OVERFLOW,
    ERR_STREAM_LONG,
    ERR_STREAM_SHORT,
    STATUS_ABORTED,
    STATUS_BUSY,
    STATUS_CHECKING,
    STATUS_DONE,
    Mode,
)


# Driver-side register names. A backend maps them to addresses (the generated regmap.py on
# sim/pynq, see bitcycle.driver.registers); the emu device uses them directly.
REGISTER_NAMES = ("ID", "VERSION", "HWCFG0", "HWCFG1", "HWCFG2", "CTRL", "STATUS", "ERROR", "MODE", "BITS", "M", "K", "N",
                  "ACC_BITS", "OUT_CFG", "CYCLES")
# CTRL.START samples the configuration and starts a job; CTRL.ABORT cuts it: its output packet ends
# (marker beat + TLAST), an open input packet is drained to TLAST, then idle; again while BUSY stops
# the drain. STATUS.DONE and ERROR hold until the next START; STATUS.ABORTED: the last job was cut
# (ABORT or a short packet). The masks are generated (hwif/codes.py).

# ERROR register bit -> the driver's wording of it
ERROR_BITS = {
    ERR_BAD_MODE: "unknown mode",
    ERR_BAD_BITS: "bits out of range 1..16",
    ERR_BAD_SHAPE: "bad shape (M, K or N is 0, or too large for the engine's memories)",
    ERR_BAD_ACC_BITS: "acc_bits out of range",
    ERR_OVERFLOW: "the accumulator could overflow for this length and bits",
    ERR_BAD_OUT_SEL: "bad output-stage select",
    ERR_STREAM_SHORT: "input stream shorter than the job (TLAST early)",
    ERR_STREAM_LONG: "input stream longer than the job",
    ERR_BAD_RES_W: "result width (OUT_CFG.RES_W) reserved or narrower than ACC_BITS",
}


def decode_error(code: int) -> str:
    names = [text for bit, text in ERROR_BITS.items() if code & bit]
    return ", ".join(names) if names else f"error code {code:#x}"


def geometry(engine) -> S.Geometry:
    """The stream geometry of driver.json's engine section."""
    return S.Geometry(pe=engine.pe, simd=engine.simd, data_width=8 * engine.stream_bytes,
                      thr_max=getattr(engine, "thr_max", 1))


def weight_words(m: int, k: int, engine) -> int:
    """Weight-memory words (one PE×SIMD tile each) a W[M, K] occupies."""
    return -(-m // engine.pe) * -(-k // engine.simd)


def pack_binary_tiles(binary, geo: S.Geometry) -> np.ndarray:
    """Vectorised twin of :func:`bitcycle.golden.stream.pack_binary_tiles` (same words; the test
    suite checks them equal). The golden one builds each tile as a Python integer, too slow for
    a training step's weight write-backs."""
    b = np.asarray(binary)
    r, c = b.shape
    gm, gk = -(-r // geo.pe), -(-c // geo.simd)
    word_bits = geo.tile_words * geo.data_width  # ≥ pe·simd: the tile's bits, then zeros
    padded = np.zeros((gm * geo.pe, gk * geo.simd), dtype=np.bool_)
    np.greater(b, 0, out=padded[:r, :c])
    tiles = np.zeros((gm, gk, word_bits), dtype=np.bool_)
    body = tiles[:, :, :geo.pe * geo.simd].reshape(gm, gk, geo.pe, geo.simd)  # a view: splits the last axis
    body[...] = padded.reshape(gm, geo.pe, gk, geo.simd).transpose(0, 2, 1, 3)
    raw = np.packbits(tiles.reshape(-1), bitorder="little")  # one flat pass: each tile is whole words of bytes
    dtype = "<u4" if geo.data_width == 32 else "<u8"
    return raw.view(dtype).astype(np.uint64)


def pack_vectors(ints, bits: int, chunk: int) -> np.ndarray:
    """Vectorised twin of :func:`bitcycle.golden.stream.pack_vectors` (same words; the test suite
    checks them equal) without its operand checks: for integer arrays the driver built itself, or
    checked already. [L, V] → for each vector, its planes MSB first, chunks of ``chunk`` inner.

    The planes go to one 0/1 byte array [V, bits, L'] (L' = the chunks' length, padded to whole
    bytes) that a single flat ``packbits`` turns into the words' little-endian bytes: numpy's
    reductions and packing along short axes run row by row, a flat pass does not."""
    x = np.asarray(ints)
    length, n_vec = x.shape
    n_chunks = -(-length // chunk)
    row = -(-n_chunks * chunk // 8) * 8  # bits per (vector, plane) row: whole bytes
    buf = (np.empty if row == length else np.zeros)((n_vec, bits, row), dtype=np.uint8)
    planes = buf[:, :, :length]
    if bits == 1:  # the bipolar code: +1 ↦ 1
        np.greater(x.T, 0, out=planes[:, 0, :].view(np.bool_))
    elif bits <= 8:
        code = x.T.astype(np.uint8)  # two's complement, wrapped to the low byte
        np.right_shift(code[:, None, :], np.arange(bits - 1, -1, -1, dtype=np.uint8)[:, None], out=planes)
        planes &= np.uint8(1)
    else:
        code = x.T.astype(np.uint16)
        planes[...] = (code[:, None, :] >> np.arange(bits - 1, -1, -1, dtype=np.uint16)[:, None]) & np.uint16(1)
    raw = np.packbits(buf.reshape(-1), bitorder="little")
    if chunk >= 8:  # a word is chunk/8 whole bytes
        words = raw.view("<u%d" % (chunk // 8)) if chunk > 8 else raw
    else:  # 8/chunk words per byte, the first in the low bits
        per, mask = 8 // chunk, np.uint8((1 << chunk) - 1)
        fields = np.empty((raw.size, per), dtype=np.uint8)
        for f in range(per):
            np.bitwise_and(raw >> np.uint8(f * chunk), mask, out=fields[:, f])
        words = fields.reshape(n_vec * bits, -1)[:, :n_chunks]
    return words.reshape(-1).astype(np.uint64)


def unpack_output(words, mode: int, geo: S.Geometry, m: int, k: int, n: int, res_bits: int = 32,
                  dtype=np.int64) -> np.ndarray:
    """Vectorised twin of :func:`bitcycle.golden.stream.unpack_output` (same int64 results; the
    test suite checks them equal): each word's little-endian bytes viewed as its signed fields.
    ``dtype`` None: the results as the fields' own signed type (int8/16/32), C-contiguous."""
    rows, n_vec = S.output_shape(mode, m, k, n)
    per = S.results_per_word(geo, res_bits)
    per_vec = -(-rows // per)
    w = np.asarray(words)
    if w.size != n_vec * per_vec:
        raise ValueError(f"expected {n_vec * per_vec} output words for this job, got {w.size}")
    lanes = w.astype("<u4" if geo.data_width == 32 else "<u8")  # a word's data_width bits
    vals = lanes.view("<i%d" % (res_bits // 8)).reshape(n_vec, per_vec * per)[:, :rows]
    dtype = vals.dtype if dtype is None else dtype
    return np.array(vals if mode == S.MODE_BACKWARD_WEIGHT else vals.T, dtype=dtype, order="C")
