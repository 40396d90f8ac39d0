"""cocotb side of the ``sim`` backend: serve register and stream requests on the Verilated engine.

:class:`bitcycle.driver.sim_backend.SimTransport` starts the simulator in a child process with
this module as the cocotb test module; the one test below connects back to the parent over a
loopback ``multiprocessing.connection`` (address and an authentication key from the
environment) and executes requests until the parent says ``close``:

    ("write", name, value)   register write      → ("ok", None)
    ("read", name)           register read       → ("ok", value)
    ("stream", words, n_out) one input packet (TLAST on the last word), then n_out words back
                             → ("ok", words) or ("short", words) when the engine sent fewer
                               within a simulated-time budget (a hung job never blocks)
    ("close",)               → ("ok", None), the test ends

The simulator only advances while a request is being executed, so the parent may take any time
between requests. Two DUTs: ``bitcycle_top`` (registers over AXI4-Lite, generated regmap) or
``bitcycle_engine`` (configuration ports: the register file is then kept here, and ID/VERSION
answer the register map's constants, HWCFG the DUT's parameters — the core has no register block).
"""

from __future__ import annotations

import os
from multiprocessing.connection import Client

import numpy as np

import cocotb
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.axi import AxiStreamFrame

from bitcycle.driver import protocol as P
from bitcycle.driver.driver_json import ENGINE_ID, EngineSpec
from bitcycle.driver.transport import hwcfg, version_word
from bitcycle.golden import stream as st

CFG_NAMES = ("MODE", "BITS", "M", "K", "N", "ACC_BITS", "OUT_CFG")


class PortRegisters:
    """The register view of ``bitcycle_engine``'s configuration ports."""

    def __init__(self, tb):
        self.tb = tb
        self.shadow = {name: 0 for name in CFG_NAMES}
        self.shadow["ACC_BITS"] = tb.acc_bits_max
        dut = tb.dut
        p = lambda name: int(getattr(dut, name).value)  # noqa: E731
        built = EngineSpec(pe=p("PE"), simd=p("SIMD"), acc_bits=p("ACC_BITS"), stream_bytes=p("DATA_W") // 8,
                           weight_words=p("WMEM_DEPTH"), act_tiles=p("AMEM_DEPTH"), max_chunks=p("MAX_CHUNKS"))
        self.hwcfg = hwcfg(built, p("THR_MAX"), p("TMEM_DEPTH"))  # the parameters this engine was built with

    async def write(self, name: str, value: int) -> None:
        if name in self.shadow:
            self.shadow[name] = value
        elif name == "CTRL":
            if value & P.CTRL_ABORT:
                await self.tb.pulse("abort")
            if value & P.CTRL_START:
                s = self.shadow
                await self.tb.configure(s["MODE"], s["BITS"], s["M"], s["K"], s["N"], s["ACC_BITS"],
                                        s["OUT_CFG"] & 0x3, (s["OUT_CFG"] >> 8) & 0x1F)
                await self.tb.pulse("start")
                await ClockCycles(self.tb.dut.clk_i, 2)  # the configuration check takes one cycle
        else:
            raise KeyError(f"bitcycle_engine has no writable register {name!r}")

    async def read(self, name: str) -> int:
        if name in self.shadow:
            return self.shadow[name]
        if name == "ID":
            return ENGINE_ID
        if name == "VERSION":
            return version_word()
        if name in self.hwcfg:
            return self.hwcfg[name]
        res = await self.tb.status()
        if name == "STATUS" and res.busy:
            # a register read over AXI4-Lite takes cycles; ports are read instantly, so let the
            # clock run while the host polls (the simulator only advances inside requests)
            await ClockCycles(self.tb.dut.clk_i, 8)
            res = await self.tb.status()
        if name == "STATUS":
            return (P.STATUS_BUSY if res.busy else 0) | (P.STATUS_DONE if res.done else 0)
        if name == "ERROR":
            return res.error
        if name == "CYCLES":
            return res.cycles
        raise KeyError(f"bitcycle_engine has no register {name!r}")


class AxiRegisters:
    """Registers of ``bitcycle_top`` over AXI4-Lite, addresses from the generated regmap."""

    def __init__(self, tb):
        from bitcycle.driver import registers

        self.tb = tb
        self.addr = registers.addresses()

    async def write(self, name: str, value: int) -> None:
        await self.tb.axil.write_dword(self.addr[name], value)

    async def read(self, name: str) -> int:
        return int(await self.tb.axil.read_dword(self.addr[name]))


def restart_sink(sink) -> None:
    """Drop a partly received frame, as the board's driver does by restarting the DMA S2MM
    channel after a timeout (the BFM keeps the partial frame in its receive coroutine)."""
    sink._handle_reset(True)
    sink._handle_reset(False)
    while not sink.empty():
        sink.recv_nowait()


@cocotb.test()
async def serve(dut):
    """Serve the parent's requests until it closes the channel."""
    from bitcycle_tb import EngineTB  # sim/ (the engine's testbench helpers)

    host, port = os.environ["BITCYCLE_SIM_ADDR"].rsplit(":", 1)
    conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ["BITCYCLE_SIM_KEY"]))
    top = hasattr(dut, "s_axil_awvalid")
    tb = EngineTB(dut, regs=top)
    await tb.start_clock_and_reset()
    geo = tb.geo
    regs = AxiRegisters(tb) if top else PortRegisters(tb)
    conn.send(("ready", {"top": top, "pe": geo.pe, "simd": geo.simd, "data_width": geo.data_width,
                         "acc_bits": tb.acc_bits_max}))
    while True:
        try:
            req = conn.recv()
        except EOFError:
            break
        op = req[0]
        try:
            if op == "write":
                await regs.write(req[1], int(req[2]))
                conn.send(("ok", None))
            elif op == "read":
                conn.send(("ok", await regs.read(req[1])))
            elif op == "stream":
                words, n_out = np.asarray(req[1], dtype=np.uint64), int(req[2])
                # simulated-time budget: every word in or out moves in a few cycles; a job that
                # never answers runs into it and is reported, not waited on forever
                budget_ns = 10 * (40 * (len(words) + n_out) + 2000)
                while not tb.sink.empty():  # leftovers of an aborted job
                    tb.sink.recv_nowait()
                if len(words):
                    await tb.source.send(AxiStreamFrame(st.words_to_bytes(words, geo)))
                    try:
                        await with_timeout(tb.source.wait(), budget_ns, "ns")
                    except Exception:  # cocotb SimTimeoutError: the engine stopped taking words
                        tb.source.clear()
                        conn.send(("short", np.zeros(0, np.uint64)))
                        continue
                if n_out:
                    try:
                        frame = await with_timeout(tb.sink.recv(), budget_ns, "ns")
                        out = st.bytes_to_words(bytes(frame.tdata), geo)
                    except Exception:  # cocotb SimTimeoutError
                        out = np.zeros(0, np.uint64)
                    if out.size < n_out:
                        restart_sink(tb.sink)
                    conn.send(("ok" if out.size >= n_out else "short", out))
                else:
                    conn.send(("ok", np.zeros(0, np.uint64)))
            elif op == "close":
                conn.send(("ok", None))
                break
            else:
                conn.send(("error", f"unknown request {op!r}"))
        except Exception as err:  # report to the parent, keep serving
            conn.send(("error", f"{type(err).__name__}: {err}"))
    conn.close()
