"""``pynq`` backend: the engine on a Zynq board through PYNQ (Overlay, MMIO, AXI DMA).

Only the transport lives here; the register programming and packing are the shared driver code.
Every wait has a deadline (:mod:`bitcycle.driver.pynq_dma`): a hung or failed DMA transfer, a
wrong received length or an engine ERROR raises a TransportTimeout at once or at the deadline,
after the engine was aborted and the DMA soft-reset and restarted; it never blocks forever. Off-board, construction fails at once with one line saying no device was found.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bitcycle.driver import protocol as P
from bitcycle.driver import pynq_dma, registers
from bitcycle.driver.pynq_dma import AxiDma, DmaFault, DmaResetFailed
from bitcycle.driver.transport import Transport, TransportTimeout
from bitcycle.errors import BitCycleError

OVERLAY_DIR = Path(__file__).resolve().parent.parent / "data" / "overlays"  # package data (pip install .)
RESET_SECONDS = 1.0  # a PG021 soft reset takes microseconds; longer means the core is stuck
ABORT_GRACE_SECONDS = 0.1  # for the engine to close its streams after ABORT, before the DMA reset
LONG_PACKET_SLACK_WORDS = 16
NO_DEVICE = ("no PYNQ device found: {why}. Run on a PYNQ board image (e.g. PYNQ-Z2), or use "
             "--backend emu (golden model) / --backend sim (Verilated RTL)")


def check_device() -> None:
    """Raise BitCycleError unless pynq is importable and sees at least one device."""
    try:
        import pynq
    except ImportError:
        raise BitCycleError(NO_DEVICE.format(why="the pynq package is not installed")) from None
    try:
        devices = pynq.Device.devices
    except Exception as err:  # pynq raises RuntimeError("No Devices Found") on some paths
        raise BitCycleError(NO_DEVICE.format(why=str(err) or type(err).__name__)) from None
    if not devices:
        raise BitCycleError(NO_DEVICE.format(why="pynq.Device.devices is empty"))


def device_present() -> bool:
    """True when pynq is importable and sees a device: then a missing or mismatched overlay is an
    error, never a reason to fall back to emu."""
    try:
        check_device()
    except BitCycleError:
        return False
    return True


def locate_bitfile(name: str | None, spec) -> Path:
    """A .bit by path, or by name next to driver.json or in the package's overlays folder; its .hwh must sit beside it."""
    name = name or spec.overlay.bitfile
    if not name:
        raise BitCycleError("no overlay given: pass bitfile= (a .bit path or name) or set overlay.bitfile in driver.json")
    candidates = [Path(name)]
    if spec.source is not None:
        candidates.append(spec.source.parent / name)
    candidates += [OVERLAY_DIR / name, OVERLAY_DIR / Path(name).stem / Path(name).name]
    candidates += [c.with_suffix(".bit") for c in candidates if c.suffix != ".bit"]
    for c in candidates:
        if c.is_file():
            if not c.with_suffix(".hwh").is_file():
                raise BitCycleError(f"{c} has no {c.with_suffix('.hwh').name} beside it: copy the .hwh Vivado wrote with the bitstream")
            return c
    raise BitCycleError(f"overlay {name!r} named by {spec.source or 'driver.json (in memory)'} not found (looked in: "
                        f"{', '.join(str(c.parent) for c in candidates[:4])}); "
                        "run `make bitstream` and copy the .bit/.hwh, or pass the path")


class PynqTransport(Transport):
    name = "pynq"

    def __init__(self, spec, bitfile: str | None = None, timeout: float = 10.0):
        check_device()
        import pynq

        path = locate_bitfile(bitfile, spec)
        self.overlay_path = path  # named in the driver's overlay-vs-driver.json errors
        try:
            self.overlay = pynq.Overlay(str(path))
        except Exception as err:
            raise BitCycleError(f"loading overlay {path} failed: {err}") from None
        try:
            self.ip = getattr(self.overlay, spec.overlay.ip)
            self.dma = getattr(self.overlay, spec.overlay.dma)
        except AttributeError as err:
            raise BitCycleError(f"overlay {path.name} has no IP named as driver.json says ({err}); "
                                f"IPs: {sorted(self.overlay.ip_dict)}") from None
        self.addr = registers.addresses()
        self.dtype = np.uint32 if spec.engine.stream_bytes == 4 else np.uint64
        self.timeout = timeout
        self._allocate = pynq.allocate
        self._in: Any = None  # pynq.allocate buffers, grown on demand
        self._out: Any = None
        self.axi = AxiDma(self.dma)
        # start clean: a previous session may have left a transfer pending or a channel halted
        self._dma_ok = False
        self.axi.reset(min(RESET_SECONDS, timeout))
        self._dma_ok = True

    def reg_write(self, name: str, value: int) -> None:
        self.ip.write(self.addr[name], int(value) & 0xFFFFFFFF)

    def reg_read(self, name: str) -> int:
        return int(self.ip.read(self.addr[name]))

    def _buffer(self, current, n: int):
        if current is None or current.shape[0] < n:
            if current is not None:
                current.freebuffer()
            current = self._allocate(shape=(max(n, 1024),), dtype=self.dtype)
        return current

    # -- the stream: pynq's channels for transfer(), PG021 registers for every wait -------------
    def check_stream(self, n_in: int, n_out: int) -> None:
        """Called by the driver before CTRL.START: both packets must fit the DMA's length register."""
        item = np.dtype(self.dtype).itemsize
        self.axi.check_size("input", n_in * item)
        self.axi.check_size("output", n_out * item)

    @property
    def max_packet_bytes(self) -> int:
        """The longest packet the DMA moves (buffer_max_size): the driver plans jobs within it."""
        return int(self.axi.max_bytes)

    def _engine_error(self) -> int:
        """The engine's ERROR code once it is DONE with one, else 0 (a wait ends on it at once)."""
        if self.reg_read("STATUS") & P.STATUS_DONE:
            return self.reg_read("ERROR")
        return 0

    def _recover(self) -> None:
        """After a fault: ABORT the engine while the S2MM buffer is still armed (its closing beat
        lands in this job's buffer, not the next one's), then soft-reset and restart the DMA. The
        driver ABORTs again and waits for BUSY low; a failed reset leaves the transport marked so
        the next job tries again before it streams."""
        self.reg_write("CTRL", P.CTRL_ABORT)
        grace = time.monotonic() + min(ABORT_GRACE_SECONDS, self.timeout)
        while self.reg_read("STATUS") & P.STATUS_BUSY and time.monotonic() < grace:
            time.sleep(0.0001)
        self._dma_ok = False
        self.axi.reset(min(RESET_SECONDS, self.timeout))
        self._dma_ok = True

    def _transfer(self, channel, buf, nbytes: int) -> None:
        try:
            channel.transfer(buf, nbytes=nbytes)
        except (RuntimeError, ValueError) as err:  # pynq's checks: not started / not idle / too long
            raise DmaFault(f"pynq refused the DMA transfer of {nbytes} bytes: {err}") from None

    def stream(self, words_in: np.ndarray, n_out: int, timeout: float) -> np.ndarray:
        n_in = int(words_in.size)
        item = np.dtype(self.dtype).itemsize
        self.check_stream(n_in, n_out)
        deadline = time.monotonic() + timeout
        if not self._dma_ok:  # the last recovery failed: the DMA must reset before it streams
            self.axi.reset(min(RESET_SECONDS, self.timeout))
            self._dma_ok = True
        self._in = self._buffer(self._in, n_in)
        self._in[:n_in] = words_in.astype(self.dtype)
        try:
            if n_out:
                # armed longer than the job, so a long packet ends at its TLAST and is measured
                self._out = self._buffer(self._out, n_out + LONG_PACKET_SLACK_WORDS)
                self._transfer(self.dma.recvchannel, self._out, min(self._out.nbytes, self.axi.max_bytes) // item * item)
            self._transfer(self.dma.sendchannel, self._in, n_in * item)
            self.axi.wait_idle(pynq_dma.MM2S, deadline, self._engine_error, P.decode_error)
            if not n_out:
                return np.zeros(0, dtype=np.uint64)
            self.axi.wait_idle(pynq_dma.S2MM, deadline, self._engine_error, P.decode_error)
            got, want = self.axi.received_bytes(), n_out * item
            if got != want:
                raise DmaFault(f"DMA receive wrote {got} bytes but the job's output packet is {want} bytes "
                               f"({'short' if got < want else 'long'} packet)")
        except TransportTimeout as fault:
            try:
                self._recover()
            except DmaResetFailed as failed:
                raise DmaResetFailed(f"{fault}; then {failed}") from None
            raise
        self._out.invalidate()
        return np.array(self._out[:n_out], dtype=np.uint64)

    def close(self) -> None:
        for buf in (self._in, self._out):
            if buf is not None:
                buf.freebuffer()
        self._in = self._out = None
