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
    padded = np.zeros((gm * geo.pe, gk * geo.simd), dtype=np.uint8)
    padded[:r, :c] = b > 0
    tiles = padded.reshape(gm, geo.pe, gk, geo.simd).transpose(0, 2, 1, 3).reshape(gm * gk, geo.pe * geo.simd)
    word_bits = geo.tile_words * geo.data_width
    if word_bits > tiles.shape[1]:
        tiles = np.concatenate([tiles, np.zeros((tiles.shape[0], word_bits - tiles.shape[1]), np.uint8)], axis=1)
    raw = np.packbits(tiles, axis=1, bitorder="little")  # [tiles, word_bits/8] little-endian bytes
    dtype = "<u4" if geo.data_width == 32 else "<u8"
    return raw.reshape(-1).view(dtype).astype(np.uint64)
