"""A register model of a Xilinx AXI DMA v7.1 in direct-register (simple) mode, as PG021 describes
it, for driving pynq's real ``pynq.lib.dma`` channel classes without a board.

It models what pynq's ``_SDMAChannel`` and the driver touch, with PG021's semantics:

* DMACR.RS=1 clears DMASR.Halted — unless an error bit is set: errors halt a channel (RS is
  cleared by the core) until a soft reset. DMACR.RS=0 halts an idle channel; with a transfer
  pending it keeps running (the core stops "when current operations are complete").
* DMACR.Reset on either channel resets the whole core: it reads 1 while in progress
  (``reset_polls`` register reads here), then every register is at its reset value
  (DMACR=0, DMASR=Halted) and pending transfers and stream data are flushed.
* Writing LENGTH on a running channel starts a transfer (on a halted one it has no effect); 0 is
  DMAIntErr. MM2S reads LENGTH bytes at SA and streams them as one packet (TLAST on the last
  word) into ``sink`` — the engine; its output packet goes to the S2MM buffer when one is armed
  (stream back-pressure until then). S2MM ends at TLAST and then S2MM_LENGTH holds the bytes
  written. A packet longer than S2MM_LENGTH is "undefined" in PG021; the model fills the buffer
  and flags DMAIntErr (halting), the harsher outcome.
* DMASR IOC_Irq / Err_Irq are write-1-to-clear.

Faults (``inject``, one-shot, consumed by the next MM2S transfer) make a channel hang, flag an
error bit, or change the packets on the stream; ``reset_stuck`` keeps DMACR.Reset at 1.
"""

from __future__ import annotations

import numpy as np

MM2S, S2MM = 0x00, 0x30
DMACR, DMASR, ADDR, ADDR_MSB, LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28
RS, RESET = 1 << 0, 1 << 2
HALTED, IDLE, INT_ERR, SLV_ERR, DEC_ERR, IOC_IRQ, ERR_IRQ = 1 << 0, 1 << 1, 1 << 4, 1 << 5, 1 << 6, 1 << 12, 1 << 14
ERRORS = INT_ERR | SLV_ERR | DEC_ERR
IRQS = IOC_IRQ | (1 << 13) | ERR_IRQ
FAULTS = ("hang_send", "hang_receive", "short_packet", "long_packet", "overlong_packet", "drop_input_word",
          "mm2s_slverr", "mm2s_decerr", "s2mm_slverr", "s2mm_decerr", "s2mm_interr")


class Memory:
    """Physical memory as the DMA sees it: the fake ``pynq.allocate`` buffers by physical address."""

    def __init__(self, base: int = 0x1000_0000):
        self.next = base
        self.buffers: dict[int, np.ndarray] = {}

    def allocate(self, shape, dtype, cls=np.ndarray):
        buf = np.zeros(shape, dtype=dtype).view(cls)
        buf.physical_address = self.next
        self.buffers[self.next] = buf
        self.next += -(-buf.nbytes // 4096) * 4096 + 4096
        return buf

    def free(self, buf) -> None:
        self.buffers.pop(buf.physical_address, None)

    def _find(self, addr: int, nbytes: int):
        for base, buf in self.buffers.items():
            if base <= addr and addr + nbytes <= base + buf.nbytes:
                return buf.view(np.uint8).reshape(-1), addr - base
        return None, 0

    def read(self, addr: int, nbytes: int) -> bytes | None:
        raw, off = self._find(addr, nbytes)
        return None if raw is None else raw[off: off + nbytes].tobytes()

    def write(self, addr: int, data: bytes) -> bool:
        raw, off = self._find(addr, len(data))
        if raw is None:
            return False
        raw[off: off + len(data)] = np.frombuffer(data, np.uint8)
        return True


class Channel:
    def __init__(self, name: str):
        self.name = name
        self.cr, self.sr, self.addr, self.length, self.pending = 0, HALTED, 0, 0, False

    def fail(self, bit: int) -> None:
        """PG021: an error halts the channel gracefully — RS cleared, Halted set, until reset."""
        self.sr = (self.sr | bit | ERR_IRQ | HALTED) & ~IDLE
        self.cr &= ~RS
        self.pending = False

    def complete(self) -> None:
        self.pending = False
        self.sr |= IDLE | IOC_IRQ


class AxiDmaModel:
    def __init__(self, memory: Memory, sink, word_bytes: int, reset_polls: int = 3):
        self.memory, self.sink, self.word_bytes, self.reset_polls = memory, sink, word_bytes, reset_polls
        self.ch = {MM2S: Channel("MM2S"), S2MM: Channel("S2MM")}
        self.packet: np.ndarray | None = None  # the engine's output packet, waiting on the stream
        self.fault: str | None = None
        self.s2mm_fault: str | None = None  # an S2MM error bit, raised when the packet arrives
        self.reset_stuck = False
        self._resetting = 0
        self.resets = 0

    def inject(self, fault: str) -> None:
        assert fault in FAULTS, fault
        self.fault = fault

    # -- the AXI4-Lite side ----------------------------------------------------------------
    def read(self, offset: int) -> int:
        if self._resetting:
            self._resetting -= 0 if self.reset_stuck else 1
            if not self._resetting:
                self._reset()
        base = S2MM if offset >= S2MM else MM2S
        ch, reg = self.ch[base], offset - base
        if reg == DMACR:
            return ch.cr | (RESET if self._resetting else 0)
        return {DMASR: ch.sr, ADDR: ch.addr & 0xFFFFFFFF, ADDR_MSB: ch.addr >> 32, LENGTH: ch.length}.get(reg, 0)

    def write(self, offset: int, value: int) -> None:
        base = S2MM if offset >= S2MM else MM2S
        ch, reg = self.ch[base], offset - base
        if self._resetting:
            return  # the core is in reset: writes are lost
        if reg == DMACR:
            if value & RESET:
                self._resetting = max(self.reset_polls, 1)
                return
            ch.cr = value & ~RESET
            if value & RS and not ch.sr & ERRORS:
                ch.sr &= ~HALTED
            elif not value & RS and not ch.pending:
                ch.sr |= HALTED
        elif reg == DMASR:
            ch.sr &= ~(value & IRQS)
        elif reg == ADDR:
            ch.addr = (ch.addr & ~0xFFFFFFFF) | value
        elif reg == ADDR_MSB:
            ch.addr = (ch.addr & 0xFFFFFFFF) | (value << 32)
        elif reg == LENGTH:
            if ch.sr & HALTED:
                return  # PG021: writing LENGTH on a halted channel has no effect
            ch.length, ch.pending = value, True
            ch.sr &= ~IDLE
            if value == 0:
                ch.fail(INT_ERR)
            elif base == MM2S:
                self._send()
            else:
                self._deliver()

    def _reset(self) -> None:
        self.resets += 1
        for name, base in (("MM2S", MM2S), ("S2MM", S2MM)):
            self.ch[base] = Channel(name)
        self.packet = None

    # -- the stream side ---------------------------------------------------------------------
    def _send(self) -> None:
        ch, fault = self.ch[MM2S], self.fault
        self.fault = None
        if fault == "hang_send":  # the sink never raises TREADY
            return
        if fault in ("mm2s_slverr", "mm2s_decerr"):
            ch.fail(SLV_ERR if fault == "mm2s_slverr" else DEC_ERR)
            return
        data = self.memory.read(ch.addr, ch.length)
        if data is None:
            ch.fail(DEC_ERR)
            return
        dtype = "<u4" if self.word_bytes == 4 else "<u8"
        words = np.frombuffer(data[: len(data) // self.word_bytes * self.word_bytes], dtype).astype(np.uint64)
        if fault == "drop_input_word":  # a beat lost between DMA and engine: TLAST comes early
            words = words[:-1]
        out = np.asarray(self.sink(words), dtype=np.uint64)
        ch.complete()
        if fault == "hang_receive":  # the output packet never gets its TLAST
            return
        if fault == "short_packet":
            out = out[:-1]
        elif fault == "long_packet":
            out = np.concatenate([out, out[:2]])
        elif fault == "overlong_packet":
            out = np.concatenate([out, np.zeros(4096, np.uint64)])
        self.packet = out if out.size else None
        self.s2mm_fault = fault if fault in ("s2mm_slverr", "s2mm_decerr", "s2mm_interr") else None
        self._deliver()

    def _deliver(self) -> None:
        ch = self.ch[S2MM]
        if self.packet is None or not ch.pending:
            return
        packet, self.packet = self.packet, None
        fault, self.s2mm_fault = self.s2mm_fault, None
        if fault:
            ch.fail({"s2mm_slverr": SLV_ERR, "s2mm_decerr": DEC_ERR, "s2mm_interr": INT_ERR}[fault])
            return
        dtype = "<u4" if self.word_bytes == 4 else "<u8"
        data = packet.astype(dtype).tobytes()
        if len(data) > ch.length:
            self.memory.write(ch.addr, data[: ch.length])
            ch.fail(INT_ERR)
            return
        if not self.memory.write(ch.addr, data):
            ch.fail(DEC_ERR)
            return
        ch.length = len(data)
        ch.complete()


class FakeMMIO:
    """What ``pynq.overlay.DefaultIP`` builds as ``self.mmio``: reads and writes go to the model."""

    def __init__(self, model: AxiDmaModel):
        self.model = model

    def read(self, offset: int = 0, length: int = 4, word_order: str = "little") -> int:
        return self.model.read(offset)

    def write(self, offset: int, data) -> None:
        self.model.write(offset, int(data))
