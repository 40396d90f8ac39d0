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
from bitcycle.hwif import regmap
from bitcycle.hwif.codes import MODE_LAST
from bitcycle.hwif.driver_json import ENGINE_ID, ENGINE_VERSION, EngineSpec
from bitcycle.errors import BitCycleError
from bitcycle.golden import stream as S


class TransportTimeout(BitCycleError):
    """A stream transfer or a status wait did not finish in time."""


class Transport:
    """Register and stream access to one engine. Subclasses implement the four methods."""

    name = "abstract"
    cycles_source = "engine CYCLES register"  # where counters()["cycles"] come from

    def reg_write(self, name: str, value: int) -> None:
        raise NotImplementedError

    def reg_read(self, name: str) -> int:
        raise NotImplementedError

    def check_stream(self, n_in: int, n_out: int) -> None:
        """Raise BitCycleError if this transport cannot move packets of ``n_in`` / ``n_out`` words;
        the driver calls it before CTRL.START, so a refusal leaves the engine idle."""

    def stream(self, words_in: np.ndarray, n_out: int, timeout: float) -> np.ndarray:
        """Send ``words_in`` (one transfer, TLAST on the last word) and receive ``n_out`` words."""
        raise NotImplementedError

    def close(self) -> None:
        pass


# build parameters in the HWCFG registers that the driver relies on: register, field, EngineSpec getter
HWCFG_FIELDS = [
    ("HWCFG0", "PE", lambda e: e.pe), ("HWCFG0", "SIMD", lambda e: e.simd),
    ("HWCFG0", "ACC_BITS", lambda e: e.acc_bits), ("HWCFG0", "DATA_WORDS", lambda e: e.stream_bytes // 4),
    ("HWCFG1", "WMEM_DEPTH", lambda e: e.weight_words), ("HWCFG1", "AMEM_DEPTH", lambda e: e.act_tiles),
    ("HWCFG2", "MAX_CHUNKS", lambda e: e.max_chunks),
]


def field(reg: str, name: str, value: int) -> int:
    lsb, width = regmap.FIELDS[reg][name][:2]
    return (value >> lsb) & ((1 << width) - 1)


def hwcfg(engine: EngineSpec, thr_max: int = 1, tmem_depth: int = 64) -> dict[str, int]:
    """HWCFG0..2 as an engine built with ``engine``'s parameters reports them."""
    words = {"HWCFG0": 0, "HWCFG1": 0, "HWCFG2": 0}
    extra = [("HWCFG0", "THR_MAX", lambda e: thr_max), ("HWCFG2", "TMEM_DEPTH", lambda e: tmem_depth)]
    for reg, name, get in HWCFG_FIELDS + extra:
        lsb, width = regmap.FIELDS[reg][name][:2]
        words[reg] |= (get(engine) & ((1 << width) - 1)) << lsb
    return words


def version_word(major: int = ENGINE_VERSION) -> int:
    return (major << regmap.FIELDS["VERSION"]["MAJOR"][0]) | regmap.VERSION_MINOR


_NO_WORDS = np.zeros(0, dtype=np.uint64)


class EmuEngine:
    """The engine as a numpy model: registers, a tiled weight memory, one job at a time.

    Arithmetic is :func:`bitcycle.golden.stream.engine_job` (i.e. ``bitserial_matmul``); packets
    are parsed with the engine's own stream contract, so a packing bug in the driver fails here
    exactly as it would on the RTL.
    """

    READ_ONLY = ("ID", "VERSION", "HWCFG0", "HWCFG1", "HWCFG2", "STATUS", "ERROR", "CYCLES")

    def __init__(self, engine: EngineSpec, latency: int = 8):
        self.engine = engine
        self.geo = P.geometry(engine)
        self.model = P.CycleModel(engine.pe, engine.simd, latency)
        self.regs = {name: 0 for name in P.REGISTER_NAMES}
        self.regs.update(ID=ENGINE_ID, VERSION=version_word(), **hwcfg(engine, engine.thr_max))
        self.wmem = -np.ones((engine.weight_words, engine.pe, engine.simd), dtype=np.int8)
        self.armed = False

    # -- registers ---------------------------------------------------------------------------
    def write(self, name: str, value: int) -> None:
        if name not in self.regs:
            raise KeyError(f"no register {name!r}")
        if name in self.READ_ONLY:
            return
        if name == "CTRL":
            if value & P.CTRL_ABORT:
                self.regs["STATUS"] &= ~P.STATUS_BUSY
                self.armed = False
            if value & P.CTRL_START:
                self._start()
            return
        self.regs[name] = int(value) & 0xFFFFFFFF

    def read(self, name: str) -> int:
        return int(self.regs[name])

    def _fail(self, bits: int) -> None:
        self.regs["ERROR"] |= bits
        self.regs["STATUS"] = P.STATUS_DONE
        self.armed = False

    def config_errors(self) -> int:
        """The RTL's start-time configuration check (bitcycle_engine.sv, JobCheck), bit for bit."""
        r, e = self.regs, self.engine
        mode, m, k, n, bits = r["MODE"], r["M"], r["K"], r["N"], r["BITS"]
        c = lambda a, b: -(-a // b)  # noqa: E731
        err = 0
        if mode > MODE_LAST:
            return P.ERR_BAD_MODE
        if mode in (P.Mode.FORWARD, P.Mode.BACKWARD_DATA, P.Mode.BACKWARD_WEIGHT):
            red_len = {P.Mode.FORWARD: k, P.Mode.BACKWARD_DATA: m, P.Mode.BACKWARD_WEIGHT: n}[P.Mode(mode)]
            chunk = e.pe if mode == P.Mode.BACKWARD_DATA else e.simd
            if not 1 <= bits <= 16:
                err |= P.ERR_BAD_BITS
            if not 2 <= r["ACC_BITS"] <= e.acc_bits:
                err |= P.ERR_BAD_ACC_BITS
            out_sel = regmap.field("OUT_CFG", "OUT_SEL", r["OUT_CFG"])
            if out_sel == 3 or (out_sel == S.OUT_THRESHOLD and mode != P.Mode.FORWARD):
                err |= P.ERR_BAD_OUT_SEL
            res_bits = self._res_bits()
            if res_bits == 0 or (out_sel == S.OUT_RAW and res_bits < 32 and r["ACC_BITS"] > res_bits):
                err |= P.ERR_BAD_RES_W
            if (0 in (m, k, n) or c(red_len, chunk) > e.max_chunks
                    or (mode != P.Mode.BACKWARD_WEIGHT and self._tiles(m, k) > e.weight_words)
                    or (mode == P.Mode.BACKWARD_WEIGHT and c(k, e.pe) * c(n, e.simd) > e.act_tiles)):
                err |= P.ERR_BAD_SHAPE
            worst = red_len if bits <= 1 else red_len << (bits - 1)
            if not err & P.ERR_BAD_BITS and worst > (1 << (e.acc_bits - 1)) - 1:
                err |= P.ERR_OVERFLOW
        elif mode == P.Mode.LOAD_WEIGHTS:
            if 0 in (m, k) or self._tiles(m, k) > e.weight_words:
                err |= P.ERR_BAD_SHAPE
        else:  # LOAD_THRESHOLDS: the driver does not use the threshold memory (host BatchNorm)
            err |= P.ERR_BAD_MODE
        return err

    def _res_bits(self) -> int:
        """Bits per result that OUT_CFG.RES_W asks for (0: the reserved code)."""
        code = regmap.field("OUT_CFG", "RES_W", self.regs["OUT_CFG"])
        return {c: b for b, c in S.RES_W_CODES.items()}.get(code, 0)

    def _tiles(self, m: int, k: int) -> int:
        return P.weight_words(m, k, self.engine)

    def _start(self) -> None:
        self.regs["ERROR"] = 0
        self.regs["STATUS"] = P.STATUS_BUSY
        self.armed = True
        err = self.config_errors()
        if err:
            self._fail(err)

    # -- weight memory -----------------------------------------------------------------------
    def _store(self, w: np.ndarray) -> None:
        e, base = self.engine, 0
        m, k = w.shape
        gk = -(-k // e.simd)
        padded = -np.ones((-(-m // e.pe) * e.pe, gk * e.simd), dtype=np.int8)
        padded[:m, :k] = w
        tiles = padded.reshape(-1, e.pe, gk, e.simd).transpose(0, 2, 1, 3).reshape(-1, e.pe, e.simd)
        self.wmem[base: base + len(tiles)] = tiles

    def _weights(self, m: int, k: int) -> np.ndarray:
        e, base = self.engine, 0
        gm, gk = -(-m // e.pe), -(-k // e.simd)
        tiles = self.wmem[base: base + gm * gk].reshape(gm, gk, e.pe, e.simd)
        return tiles.transpose(0, 2, 1, 3).reshape(gm * e.pe, gk * e.simd)[:m, :k]

    @staticmethod
    def _unpack_tiles(words: np.ndarray, rows: int, cols: int, geo: S.Geometry) -> np.ndarray:
        per = geo.tile_words
        gm, gk = -(-rows // geo.pe), -(-cols // geo.simd)
        dtype = "<u4" if geo.data_width == 32 else "<u8"
        raw = np.asarray(words[: gm * gk * per], dtype=np.uint64).astype(dtype).view(np.uint8).reshape(gm * gk, -1)
        bits = np.unpackbits(raw, axis=1, bitorder="little")[:, : geo.pe * geo.simd].astype(np.int8)
        tiles = (2 * bits - 1).reshape(gm, gk, geo.pe, geo.simd)
        out = tiles.transpose(0, 2, 1, 3).reshape(gm * geo.pe, gk * geo.simd)
        return out[:rows, :cols]

    @staticmethod
    def _unpack_vectors(words: np.ndarray, length: int, n_vec: int, bits: int, chunk: int) -> np.ndarray:
        n_chunks = -(-length // chunk)
        w = np.asarray(words, dtype=np.uint64).reshape(n_vec, bits, n_chunks)[:, ::-1, :]  # plane LSB first
        planes = ((w[..., None] >> np.arange(chunk, dtype=np.uint64)) & np.uint64(1)).astype(np.int64)
        planes = planes.reshape(n_vec, bits, n_chunks * chunk)[:, :, :length]  # [V, bits, L]
        if bits == 1:
            return (2 * planes[:, 0, :] - 1).T
        weights = np.array([1 << p for p in range(bits)], dtype=np.int64)
        weights[-1] = -weights[-1]
        return np.einsum("vpl,p->lv", planes, weights)

    # -- stream ------------------------------------------------------------------------------
    def stream(self, words_in: np.ndarray) -> np.ndarray:
        """One DMA round trip. A job in error, or a length mismatch, produces no output words."""
        if not self.armed:
            return _NO_WORDS
        r, geo = self.regs, self.geo
        mode, m, k, n, bits = P.Mode(r["MODE"]), r["M"], r["K"], r["N"], r["BITS"]
        words_in = np.asarray(words_in, dtype=np.uint64)
        expected = S.input_words(mode, geo, m, k, n, bits)
        if words_in.size != expected:
            self._fail(P.ERR_STREAM_SHORT if words_in.size < expected else P.ERR_STREAM_LONG)
            return _NO_WORDS
        if mode == P.Mode.LOAD_WEIGHTS:
            self._store(self._unpack_tiles(words_in, m, k, geo))
            out = _NO_WORDS
        else:
            acc_bits = r["ACC_BITS"]
            if mode == P.Mode.FORWARD:
                x = self._unpack_vectors(words_in, k, n, bits, geo.simd)
                result = S.engine_job(mode, bits, acc_bits, ints=x, weights=self._weights(m, k))
            elif mode == P.Mode.BACKWARD_DATA:
                dy = self._unpack_vectors(words_in, m, n, bits, geo.pe)
                result = S.engine_job(mode, bits, acc_bits, ints=dy, weights=self._weights(m, k))
            else:
                n_tile = -(-k // geo.pe) * -(-n // geo.simd) * geo.tile_words
                sx = self._unpack_tiles(words_in[:n_tile], k, n, geo)
                dy = self._unpack_vectors(words_in[n_tile:], n, m, bits, geo.simd).T
                result = S.engine_job(mode, bits, acc_bits, binary=sx, ints=dy)
            out = S.pack_output(result, mode, geo, self._res_bits())
        cycles = self.model.cycles(mode, bits, m, k, n, words_in.size)
        r["CYCLES"] = min(cycles, 0xFFFFFFFF)
        r["STATUS"] = P.STATUS_DONE
        self.armed = False
        return out


class EmuTransport(Transport):
    name = "emu"
    cycles_source = "cycle model (bits·⌈M/PE⌉·⌈K/SIMD⌉·N + latency), not measured"

    def __init__(self, engine: EngineSpec):
        self.device = EmuEngine(engine)

    def reg_write(self, name: str, value: int) -> None:
        self.device.write(name, value)

    def reg_read(self, name: str) -> int:
        return self.device.read(name)

    def stream(self, words_in: np.ndarray, n_out: int, timeout: float) -> np.ndarray:
        out = self.device.stream(words_in)
        if out.size < n_out:
            # on hardware the receive channel would wait for words that never come: the same
            # outcome the driver sees there, a timeout
            raise TransportTimeout(f"stream receive got {out.size} of {n_out} words (engine error or short stream)")
        return out[:n_out]
