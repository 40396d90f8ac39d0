"""How the driver talks to the engine: register names, modes, stream packing, the cycle model.

Everything backend-independent about one engine operation lives here and in
:class:`bitcycle.driver.accelerator.Accelerator`; a backend only moves register values and
stream words (see :class:`Transport`). numpy only (runs on the board).

One operation (a "job") is: program MODE, BITS, M, K, N, ACC_BITS, W_BASE; pulse CTRL.START;
send the input stream; receive M*N results; wait for STATUS.DONE (with a timeout); read CYCLES
and ERROR. Modes (result[M, N] = binary[M, K] @ ints[K, N]):

    LOAD_W   write the weight memory at W_BASE: stream = sign bits of W[M, K], row-major
    FWD      y = W·x       binary = W[M, K] from weight memory, ints = x[K, N] streamed
    BWD_DATA dx = Wᵀ·dy    binary = Wᵀ: the stored W[K, M] read transposed (no copy), ints = dy[K, N]
    BWD_W    dWᵀ = xᵀ·dy   binary = stored sign(x) [M, K] streamed first, then ints[K, N]

Stream words are ``stream_bytes`` wide (8 = a 64-bit AXI DMA). Packing (little-endian):
binary operands as bits (1 = +1), row-major, padded to whole words; integer operands as int16
(4 per 64-bit word), column by column (ints[:, n] contiguous: one DMA burst per output vector);
results as int32, row-major [M, N], 2 per 64-bit word.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from bitcycle.errors import BitCycleError


class Mode(enum.IntEnum):
    LOAD_W = 0
    FWD = 1
    BWD_DATA = 2
    BWD_W = 3


# Register word offsets (byte address = 4 * index) of the engine's AXI4-Lite block.
REGISTERS = {
    "ID": 0x00, "VERSION": 0x04, "CTRL": 0x08, "STATUS": 0x0C, "ERROR": 0x10,
    "MODE": 0x14, "BITS": 0x18, "M": 0x1C, "K": 0x20, "N": 0x24, "ACC_BITS": 0x28,
    "W_BASE": 0x2C, "CYCLES_LO": 0x30, "CYCLES_HI": 0x34, "CONFIG": 0x38,
}
CTRL_START = 1 << 0
CTRL_CLEAR = 1 << 1  # clear ERROR/DONE and drop any half-received stream
STATUS_BUSY = 1 << 0
STATUS_DONE = 1 << 1
STATUS_ERROR = 1 << 2
ERROR_BITS = {
    1 << 0: "bits out of range",
    1 << 1: "bad shape (M, K or N is 0 or too large)",
    1 << 2: "stream length mismatch",
    1 << 3: "weight memory overflow (W_BASE + size > depth)",
    1 << 4: "accumulator could overflow ACC_BITS for this shape",
    1 << 5: "bad mode",
}
RESULT_BITS = 32
INT_BITS = 16


def decode_error(code: int) -> str:
    names = [text for bit, text in ERROR_BITS.items() if code & bit]
    return ", ".join(names) if names else f"error code {code:#x}"


def words_for(n_bytes: int, stream_bytes: int) -> int:
    return -(-n_bytes // stream_bytes)


def _to_words(raw: bytes, stream_bytes: int) -> np.ndarray:
    pad = (-len(raw)) % stream_bytes
    raw = raw + b"\0" * pad
    dtype = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}[stream_bytes]
    return np.frombuffer(raw, dtype=dtype).copy()


def pack_binary(binary: np.ndarray, stream_bytes: int) -> np.ndarray:
    """±1 [M, K] → stream words: bit (m*K + k) set when binary[m, k] = +1."""
    bits = (np.asarray(binary) > 0).astype(np.uint8).ravel()
    return _to_words(np.packbits(bits, bitorder="little").tobytes(), stream_bytes)


def unpack_binary(words: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    raw = np.asarray(words).tobytes()
    bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")[: shape[0] * shape[1]]
    return np.where(bits.reshape(shape) > 0, 1, -1).astype(np.int8)


def pack_ints(ints: np.ndarray, stream_bytes: int) -> np.ndarray:
    """Integer [K, N] (fits int16) → stream words, column-major (ints[:, 0] first)."""
    col_major = np.ascontiguousarray(np.asarray(ints).T).astype("<i2")
    return _to_words(col_major.tobytes(), stream_bytes)


def unpack_ints(words: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    k, n = shape
    vals = np.frombuffer(np.asarray(words).tobytes(), "<i2")[: k * n]
    return vals.reshape(n, k).T.astype(np.int64)


def pack_results(values: np.ndarray, stream_bytes: int) -> np.ndarray:
    return _to_words(np.asarray(values).astype("<i4").ravel().tobytes(), stream_bytes)


def unpack_results(words: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m, n = shape
    vals = np.frombuffer(np.asarray(words).tobytes(), "<i4")
    if vals.size < m * n:
        raise BitCycleError(f"engine returned {vals.size} results, expected {m * n} ({m}x{n})")
    return vals[: m * n].reshape(m, n).astype(np.int64)


def result_words(m: int, n: int, stream_bytes: int) -> int:
    return words_for(m * n * RESULT_BITS // 8, stream_bytes)


def weight_words(m: int, k: int, simd: int) -> int:
    """Weight-memory words (SIMD bits each) a W[M, K] occupies: each row padded to SIMD lanes."""
    return m * -(-k // simd)


@dataclass(frozen=True)
class CycleModel:
    """Cycles of one job on the bit-serial array: bits · ⌈M/PE⌉ · ⌈K/SIMD⌉ · N + latency.

    Used by the ``emu`` backend (which has no clock); ``sim`` and ``pynq`` read the engine's
    CYCLES register instead, and the tests compare the two.
    """

    pe: int
    simd: int
    latency: int = 8

    def cycles(self, mode: Mode, bits: int, m: int, k: int, n: int) -> int:
        if mode == Mode.LOAD_W:
            return weight_words(m, k, self.simd) + self.latency
        return bits * -(-m // self.pe) * -(-k // self.simd) * n + self.latency
