"""``pynq`` backend: the engine on a Zynq board through PYNQ (Overlay, MMIO, AXI DMA).

Only the transport lives here; the register programming and packing are the shared driver code.
Every wait has a deadline: a hung DMA transfer raises (and the channel is restarted), it never
blocks forever. Off-board, construction fails at once with one line saying no device was found.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bitcycle.driver import registers
from bitcycle.driver.transport import Transport, TransportTimeout
from bitcycle.errors import BitCycleError

OVERLAY_DIR = Path(__file__).resolve().parent.parent / "data" / "overlays"  # package data (pip install .)
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
        self._in = self._out = None

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

    def _wait(self, channel, what: str, deadline: float) -> None:
        while not channel.idle:
            if channel.error:
                channel.stop()
                channel.start()
                raise TransportTimeout(f"DMA {what} channel reported an error (status bits 0x70)")
            if time.monotonic() > deadline:
                channel.stop()
                channel.start()
                raise TransportTimeout(f"DMA {what} did not finish")
            time.sleep(0.0001)

    def stream(self, words_in: np.ndarray, n_out: int, timeout: float) -> np.ndarray:
        n_in = int(words_in.size)
        self._in = self._buffer(self._in, n_in)
        self._in[:n_in] = words_in.astype(self.dtype)
        item = np.dtype(self.dtype).itemsize
        deadline = time.monotonic() + timeout
        if n_out:
            self._out = self._buffer(self._out, n_out)
            self.dma.recvchannel.transfer(self._out, nbytes=n_out * item)
        self.dma.sendchannel.transfer(self._in, nbytes=n_in * item)
        self._wait(self.dma.sendchannel, "send", deadline)
        if not n_out:
            return np.zeros(0, dtype=np.uint64)
        self._wait(self.dma.recvchannel, "receive", deadline)
        self._out.invalidate()
        return np.array(self._out[:n_out], dtype=np.uint64)

    def close(self) -> None:
        for buf in (self._in, self._out):
            if buf is not None:
                buf.freebuffer()
        self._in = self._out = None
