"""A PYNQ board without the board: the engine behind MMIO, pynq 4.0's REAL AXI DMA classes over a
PG021 register model (``pg021.py``), and DDR for the ``pynq.allocate`` buffers.

Only ``pynq.Device``, ``pynq.Overlay`` and ``pynq.allocate`` are stand-ins (they need a device);
``pynq.lib.dma.DMA`` and its channels run unmodified. Used by ``test_driver_pynq.py`` (faults) and,
through ``board_site/sitecustomize.py``, by the notebooks' board-path test, whose kernels import it.
"""

from __future__ import annotations

import types
from typing import Callable

import numpy as np
import pynq.overlay  # the real package: its DefaultIP/DMA classes are what the transport drives
from pynq.lib.dma import DMA

import pg021
from bitcycle.driver import protocol as P
from bitcycle.driver.transport import EmuEngine
from bitcycle.hwif import regmap

NAME_AT = {addr: name for name, addr in regmap.ADDRESSES.items()}


class Buffer(np.ndarray):
    """A ``pynq.allocate`` buffer: an ndarray with a physical address (set by pg021.Memory)."""

    def flush(self):
        pass

    def invalidate(self):
        pass

    def freebuffer(self):
        self.memory.free(self)


class Board:
    """The PL as pynq sees it: the engine behind MMIO, an AXI DMA model, DDR for the buffers."""

    def __init__(self, engine, length_width: int = 26):
        self.engine = EmuEngine(engine)
        self.memory = pg021.Memory()
        self.dma_model = pg021.AxiDmaModel(self.memory, self.engine.stream, engine.stream_bytes)
        self.length_width = length_width
        self.starts = 0  # CTRL.START writes: the engine must not start a job the DMA cannot move

    def dma_description(self) -> dict:
        bits = str(8 * self.dma_model.word_bytes)
        return {"phys_addr": 0x4040_0000, "addr_range": 0x10000, "device": "fake-zynq", "interrupts": {},
                "parameters": {"c_include_sg": "0", "c_micro_dma": "0", "c_sg_length_width": str(self.length_width),
                               "c_include_mm2s": "1", "c_include_s2mm": "1", "c_include_mm2s_dre": "0",
                               "c_include_s2mm_dre": "0", "c_m_axi_mm2s_data_width": bits,
                               "c_m_axi_s2mm_data_width": bits}}

    def idle(self) -> bool:
        """Engine not BUSY, both DMA channels running with nothing pending (a clean start state)."""
        chans = self.dma_model.ch.values()
        return (not self.engine.read("STATUS") & P.STATUS_BUSY
                and all(not c.sr & (pg021.HALTED | pg021.ERRORS) and not c.pending for c in chans))


class IP:
    def __init__(self, board):
        self.board = board

    def read(self, offset):
        return self.board.engine.read(NAME_AT[offset])

    def write(self, offset, value):
        name = NAME_AT[offset]
        if name == "CTRL" and value & P.CTRL_START:
            self.board.starts += 1
        self.board.engine.write(name, value)


def pynq_stand_in(board_for_bitfile: Callable[[str], Board]):
    """(MMIO factory for ``pynq.overlay.MMIO``, the ``pynq`` module stand-in) over the board that
    ``board_for_bitfile(path)`` gives for the overlay being loaded."""
    current: dict[str, Board] = {}

    def mmio(base, length, device=None):
        return pg021.FakeMMIO(current["board"].dma_model)

    class Overlay:
        def __init__(self, path):
            board = current["board"] = board_for_bitfile(path)
            self.bitcycle_top_0 = IP(board)
            self.axi_dma_0 = DMA(board.dma_description())  # pynq's own class over the model
            self.ip_dict = {"bitcycle_top_0": {}, "axi_dma_0": {}}

    def allocate(shape, dtype):
        board = current["board"]
        buf = board.memory.allocate(shape, dtype, Buffer)
        buf.memory = board.memory
        return buf

    stub = types.SimpleNamespace(Device=types.SimpleNamespace(devices=["fake-zynq"]), Overlay=Overlay,
                                 allocate=allocate)
    return mmio, stub


__all__ = ["Board", "Buffer", "IP", "pynq", "pynq_stand_in"]
