"""The AXI DMA (Xilinx PG021, direct-register mode) behind pynq's channel classes, with a deadline
on every wait.

pynq's ``_SDMAChannel.start()``, ``stop()`` and ``wait()`` spin on the status register with no
deadline, and a PG021 channel does not do what those spins wait for after a fault: an error
(DMAIntErr/SlvErr/DecErr) halts the channel until a soft reset, so RS=1 alone never restarts it;
and RS=0 with a transfer pending does not halt it. So the driver calls none of them while a spin
could hang. It polls DMASR itself against a deadline, recovers with a soft reset (DMACR.Reset on
either channel resets the whole core), sets RS=1 and waits (bounded) for Halted to clear, and only
then calls pynq's ``start()`` — which on a running channel returns at once — so pynq's
first-transfer bookkeeping is right for the next ``transfer()``.

numpy-free, runs on the board; the offsets and bits are PG021's, the same on every AXI DMA v7.1.
"""

from __future__ import annotations

import time
from typing import Callable

from bitcycle.driver.transport import TransportTimeout

MM2S, S2MM = 0x00, 0x30  # channel register blocks
DMACR, DMASR, LENGTH = 0x00, 0x04, 0x28  # within a block: control, status, buffer length
CR_RS, CR_RESET = 1 << 0, 1 << 2
SR_HALTED, SR_IDLE = 1 << 0, 1 << 1
SR_ERRORS = {
    1 << 4: "DMAIntErr (internal error: zero length, or a packet longer than the buffer)",
    1 << 5: "DMASlvErr (the memory answered SLVERR: buffer not accessible)",
    1 << 6: "DMADecErr (the buffer address decodes to no memory)",
}
SR_ERROR_MASK = sum(SR_ERRORS)
CHANNEL_NAMES = {MM2S: "send (MM2S)", S2MM: "receive (S2MM)"}
LENGTH_WIDTH_MAX = 26  # PG021: the Buffer Length Register is 8..26 bits wide
POLL_SECONDS = 0.0001


class DmaFault(TransportTimeout):
    """A DMA transfer hung, failed or moved the wrong number of bytes (the DMA was reset)."""


class DmaResetFailed(DmaFault):
    """The soft reset did not finish, or a channel stayed halted after it: reload the overlay."""


class DmaTransferTooLarge(DmaFault):
    """A packet is longer than the DMA's length register can describe."""


class EngineStopped(TransportTimeout):
    """The engine flagged ERROR while the DMA was waiting for its stream."""


def error_names(status: int) -> str:
    return ", ".join(text for bit, text in SR_ERRORS.items() if status & bit)


class AxiDma:
    """Register-level control of one pynq ``pynq.lib.dma.DMA`` (simple mode): bounded waits,
    soft reset + restart, the S2MM byte count, the transfer-size limit."""

    def __init__(self, dma):
        self.dma = dma
        # pynq derives buffer_max_size from c_sg_length_width: 2**width - 1 bytes
        self.max_bytes = int(getattr(dma, "buffer_max_size", (1 << LENGTH_WIDTH_MAX) - 1))
        self.length_width = (self.max_bytes + 1).bit_length() - 1

    def read(self, offset: int) -> int:
        return int(self.dma.mmio.read(offset))

    def write(self, offset: int, value: int) -> None:
        self.dma.mmio.write(offset, int(value))

    def check_size(self, what: str, nbytes: int) -> None:
        """One job is one packet (the engine ends it at TLAST), so it cannot be split across
        transfers: a packet the length register cannot describe is an error before CTRL.START."""
        if nbytes > self.max_bytes:
            raise DmaTransferTooLarge(
                f"the job's {what} packet is {nbytes} bytes but the AXI DMA moves at most {self.max_bytes} "
                f"(buffer_max_size, c_sg_length_width={self.length_width}); a packet cannot be split, so rebuild "
                f"the overlay with CONFIG.c_sg_length_width {{{LENGTH_WIDTH_MAX}}} on the axi_dma as "
                "hw/vivado/zynq_bd.tcl.in sets it, or use a smaller batch")

    def wait_idle(self, base: int, deadline: float, engine_error: Callable[[], int],
                  decode: Callable[[int], str]) -> None:
        """Until the channel's transfer completes; raise on a DMASR error bit, on an engine ERROR
        (``engine_error()`` returns the code, 0 while none) or at the deadline."""
        what = CHANNEL_NAMES[base]
        while True:
            status = self.read(base + DMASR)
            if status & SR_ERROR_MASK:
                raise DmaFault(f"DMA {what} halted with {error_names(status)} (DMASR={status:#06x})")
            if status & SR_IDLE:
                return
            code = engine_error()
            if code:
                raise EngineStopped(f"engine flagged ERROR={code:#x} ({decode(code)}) during the DMA {what}")
            if time.monotonic() > deadline:
                state = "halted" if status & SR_HALTED else "running, transfer pending"
                raise DmaFault(f"DMA {what} did not finish (DMASR={status:#06x}: {state})")
            time.sleep(POLL_SECONDS)

    def received_bytes(self) -> int:
        """PG021: at the end of an S2MM transfer, S2MM_LENGTH holds the bytes actually written."""
        return self.read(S2MM + LENGTH)

    def channels_running(self) -> bool:
        return not any(self.read(base + DMASR) & (SR_HALTED | SR_ERROR_MASK) for base in (MM2S, S2MM))

    def reset(self, seconds: float) -> None:
        """Soft reset (both channels), then RS=1 on each and pynq's start() once it is running."""
        deadline = time.monotonic() + seconds
        self.write(MM2S + DMACR, CR_RESET)
        while self.read(MM2S + DMACR) & CR_RESET:
            if time.monotonic() > deadline:
                raise DmaResetFailed(f"the AXI DMA soft reset did not finish within {seconds:g} s (MM2S_DMACR.Reset "
                                     "still 1): the DMA is stuck, reload the overlay")
            time.sleep(POLL_SECONDS)
        for base, channel in ((MM2S, self.dma.sendchannel), (S2MM, self.dma.recvchannel)):
            if channel is None:
                continue
            self.write(base + DMACR, CR_RS)
            while (status := self.read(base + DMASR)) & SR_HALTED:
                if time.monotonic() > deadline:
                    raise DmaResetFailed(f"DMA {CHANNEL_NAMES[base]} stayed halted after a soft reset and RS=1 "
                                         f"(DMASR={status:#06x}): reload the overlay")
                time.sleep(POLL_SECONDS)
            channel.start()  # running now, so pynq's spin ends at once; resets its first-transfer flag
