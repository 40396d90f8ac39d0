"""AXI4-Stream protocol monitor for cocotb testbenches: one per stream, on every engine/top test.

Checked on every rising clock edge outside reset (ARM IHI 0051, AXI4-Stream, and the AXI DMA's
rules for S2MM):
  * once TVALID is high it stays high, with TDATA/TLAST/TKEEP unchanged, until TREADY takes it;
  * TVALID, TREADY and TLAST are never X/Z outside reset;
  * TKEEP (if the stream has it) is all ones on every beat but the last of a packet, and on the
    last it is a non-empty run of ones from lane 0 (a DMA writes the kept bytes only).
A violation raises at once (the test fails) and is kept in ``violations``. ``packets`` counts the
packets that ended with TLAST; ``open`` says whether a packet has begun and not yet ended.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import RisingEdge


def _int(sig):
    v = sig.value
    return int(v) if v.is_resolvable else None


class AxisProtocolError(AssertionError):
    pass


class AxisMonitor:
    def __init__(self, dut, prefix: str, clk, rst_n, name: str | None = None, raise_at_once: bool = True):
        self.name = name or prefix
        self.clk = clk
        self.rst_n = rst_n
        self.tdata = getattr(dut, f"{prefix}_tdata")
        self.tvalid = getattr(dut, f"{prefix}_tvalid")
        self.tready = getattr(dut, f"{prefix}_tready")
        self.tlast = getattr(dut, f"{prefix}_tlast")
        self.tkeep = getattr(dut, f"{prefix}_tkeep", None)
        self.raise_at_once = raise_at_once
        self.violations: list[str] = []
        self.packets = 0
        self.beats = 0
        self.open = False
        self._task = None

    def start(self):
        if self._task is None:
            self._task = cocotb.start_soon(self._run())
        return self

    def _fail(self, msg: str):
        msg = f"{self.name}: {msg}"
        self.violations.append(msg)
        if self.raise_at_once:
            raise AxisProtocolError(msg)

    def _keep_ok(self, keep: int, last: bool) -> bool:
        full = (1 << len(self.tkeep)) - 1
        if not last:
            return keep == full
        return keep != 0 and (keep & (keep + 1)) == 0  # 0b0..01..1

    async def _run(self):
        pending = None  # (data, last, keep) offered and not yet taken
        cycle = 0
        while True:
            await RisingEdge(self.clk)
            cycle += 1
            if _int(self.rst_n) != 1:
                pending = None
                self.open = False
                continue
            valid, ready, last = _int(self.tvalid), _int(self.tready), _int(self.tlast)
            if valid is None or ready is None:
                self._fail(f"TVALID/TREADY not 0/1 at cycle {cycle}")
                continue
            data = _int(self.tdata)
            keep = _int(self.tkeep) if self.tkeep is not None else None
            beat = (data, last, keep)
            if pending is not None:
                if not valid:
                    self._fail(f"TVALID dropped before its handshake at cycle {cycle}")
                elif beat != pending:
                    self._fail(f"TDATA/TLAST/TKEEP changed while waiting for TREADY at cycle {cycle}: "
                               f"{pending} -> {beat}")
            if not valid:
                pending = None
                continue
            if last is None:
                self._fail(f"TLAST not 0/1 on a valid beat at cycle {cycle}")
            if keep is not None and last is not None and not self._keep_ok(keep, bool(last)):
                self._fail(f"TKEEP {keep:#x} not allowed on a {'last' if last else 'middle'} beat at cycle {cycle}")
            if ready:
                pending = None
                self.beats += 1
                self.open = not last
                if last:
                    self.packets += 1
            else:
                pending = beat

    def check(self):
        """Raise if any violation was seen (for monitors built with raise_at_once=False)."""
        if self.violations:
            raise AxisProtocolError("; ".join(self.violations[:5]))
