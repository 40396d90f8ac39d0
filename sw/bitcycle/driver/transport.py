"""Transports: the only part of the driver a backend replaces.

A transport moves register values and stream words; it knows nothing about layers, modes or
training. :class:`EmuTransport` is the ``emu`` backend: a numpy model of the engine's registers
and streams whose arithmetic is :func:`bitcycle.golden.bitserial_matmul` (bit-exact by
definition), so the driver's register programming and packing run the same code path as on the
board.
"""

from __future__ import annotations

import numpy as np

from bitcycle.driver import protocol as P
from bitcycle.driver.driver_json import ENGINE_ID, ENGINE_VERSION, EngineSpec
from bitcycle.errors import BitCycleError
from bitcycle.golden import bitserial_matmul


class TransportTimeout(BitCycleError):
    """A stream transfer or a status wait did not finish in time."""


class Transport:
    """Register and stream access to one engine. Subclasses implement the four methods."""

    name = "abstract"

    def reg_write(self, name: str, value: int) -> None:
        raise NotImplementedError

    def reg_read(self, name: str) -> int:
        raise NotImplementedError

    def stream(self, words_in: np.ndarray, n_out: int, timeout: float) -> np.ndarray:
        """Send ``words_in`` (one transfer, TLAST on the last word) and receive ``n_out`` words."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def config_word(engine: EngineSpec) -> int:
    """The CONFIG register: PE[7:0], SIMD[15:8] (as log2), ACC_BITS[21:16], MAX_BITS[26:22]."""
    return (engine.pe & 0xFF) | ((engine.simd.bit_length() - 1) << 8) | ((engine.acc_bits & 0x3F) << 16) \
        | ((engine.max_bits & 0x1F) << 22)


class EmuEngine:
    """The engine as a numpy model: registers, weight memory, one job at a time."""

    def __init__(self, engine: EngineSpec, latency: int = 8):
        self.engine = engine
        self.model = P.CycleModel(engine.pe, engine.simd, latency)
        self.regs = {name: 0 for name in P.REGISTERS}
        self.regs["ID"] = ENGINE_ID
        self.regs["VERSION"] = ENGINE_VERSION
        self.regs["CONFIG"] = config_word(engine)
        # weight memory: one ±1 row-chunk of SIMD lanes per word; kept as a flat ±1 array here
        self.wmem = np.ones(engine.weight_words * engine.simd, dtype=np.int8)
        self.armed = False

    # -- registers ---------------------------------------------------------------------------
    def write(self, name: str, value: int) -> None:
        if name not in P.REGISTERS:
            raise KeyError(name)
        if name in ("ID", "VERSION", "STATUS", "ERROR", "CYCLES_LO", "CYCLES_HI", "CONFIG"):
            return  # read-only
        if name == "CTRL":
            if value & P.CTRL_CLEAR:
                self.regs["ERROR"] = 0
                self.regs["STATUS"] = 0
                self.armed = False
            if value & P.CTRL_START:
                self._start()
            return
        self.regs[name] = int(value) & 0xFFFFFFFF

    def read(self, name: str) -> int:
        return int(self.regs[name])

    def _fail(self, bit: int) -> None:
        self.regs["ERROR"] |= bit
        self.regs["STATUS"] = P.STATUS_ERROR | P.STATUS_DONE
        self.armed = False

    def _start(self) -> None:
        r, e = self.regs, self.engine
        r["ERROR"] = 0
        r["STATUS"] = P.STATUS_BUSY
        self.armed = True
        try:
            mode = P.Mode(r["MODE"])
        except ValueError:
            return self._fail(0x20)
        m, k, n, bits = r["M"], r["K"], r["N"], r["BITS"]
        if mode != P.Mode.LOAD_W and not 1 <= bits <= e.max_bits:
            return self._fail(0x01)
        if min(m, k, n) < 1 or max(m, k, n) > 0xFFFF:
            return self._fail(0x02)
        if mode in (P.Mode.LOAD_W, P.Mode.FWD, P.Mode.BWD_DATA):
            rows, cols = (k, m) if mode == P.Mode.BWD_DATA else (m, k)
            if r["W_BASE"] + P.weight_words(rows, cols, e.simd) > e.weight_words:
                return self._fail(0x08)
        if mode != P.Mode.LOAD_W:
            acc = r["ACC_BITS"]
            if not 2 <= acc <= e.acc_bits:
                return self._fail(0x10)

    # -- stream ------------------------------------------------------------------------------
    def _expected_in(self) -> int:
        r, sb = self.regs, self.engine.stream_bytes
        mode, m, k, n = P.Mode(r["MODE"]), r["M"], r["K"], r["N"]
        if mode == P.Mode.LOAD_W:
            return P.words_for(-(-m * k // 8), sb)
        ints = P.words_for(k * n * P.INT_BITS // 8, sb)
        if mode == P.Mode.BWD_W:
            return P.words_for(-(-m * k // 8), sb) + ints
        return ints

    def _weights(self, rows: int, cols: int) -> np.ndarray:
        simd = self.engine.simd
        chunks = -(-cols // simd)
        base = self.regs["W_BASE"] * simd
        block = self.wmem[base: base + rows * chunks * simd].reshape(rows, chunks * simd)
        return block[:, :cols]

    def stream(self, words_in: np.ndarray, n_out: int) -> np.ndarray:
        """One DMA round trip. A job in error, or a length mismatch, produces no output words."""
        if not self.armed:
            return np.zeros(0, dtype=np.uint64)
        r, e, sb = self.regs, self.engine, self.engine.stream_bytes
        words_in = np.asarray(words_in)
        if words_in.size != self._expected_in():
            self._fail(0x04)
            return np.zeros(0, dtype=np.uint64)
        mode, m, k, n, bits = P.Mode(r["MODE"]), r["M"], r["K"], r["N"], r["BITS"]
        if mode == P.Mode.LOAD_W:
            w = P.unpack_binary(words_in, (m, k))
            simd, chunks = e.simd, -(-k // e.simd)
            padded = np.ones((m, chunks * simd), dtype=np.int8)
            padded[:, :k] = w
            base = r["W_BASE"] * simd
            self.wmem[base: base + padded.size] = padded.ravel()
            out = np.zeros(0, dtype=np.uint64)
        else:
            if mode == P.Mode.BWD_W:
                nb = P.words_for(-(-m * k // 8), sb)
                binary = P.unpack_binary(words_in[:nb], (m, k))
                ints = P.unpack_ints(words_in[nb:], (k, n))
            else:
                ints = P.unpack_ints(words_in, (k, n))
                binary = self._weights(m, k) if mode == P.Mode.FWD else self._weights(k, m).T
            try:
                result = bitserial_matmul(binary, ints, bits, acc_bits=min(r["ACC_BITS"], P.RESULT_BITS))
            except ValueError:
                self._fail(0x01)  # operand does not fit BITS: the RTL would compute garbage; flag it
                return np.zeros(0, dtype=np.uint64)
            out = P.pack_results(result, sb)
        cycles = self.model.cycles(mode, bits, m, k, n)
        r["CYCLES_LO"], r["CYCLES_HI"] = cycles & 0xFFFFFFFF, cycles >> 32
        r["STATUS"] = P.STATUS_DONE
        self.armed = False
        return out


class EmuTransport(Transport):
    name = "emu"

    def __init__(self, engine: EngineSpec):
        self.device = EmuEngine(engine)

    def reg_write(self, name: str, value: int) -> None:
        self.device.write(name, value)

    def reg_read(self, name: str) -> int:
        return self.device.read(name)

    def stream(self, words_in: np.ndarray, n_out: int, timeout: float) -> np.ndarray:
        out = self.device.stream(words_in, n_out)
        if out.size < n_out:
            # on hardware the receive channel would wait for words that never come: the same
            # outcome the driver sees there, a timeout
            raise TransportTimeout(f"stream receive got {out.size} of {n_out} words (engine error or short stream)")
        return out[:n_out]
