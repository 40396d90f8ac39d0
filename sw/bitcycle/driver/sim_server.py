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
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout
from cocotbext.axi import AxiStreamFrame

from bitcycle.driver import protocol as P
from bitcycle.hwif.driver_json import ENGINE_ID, EngineSpec
from bitcycle.driver.transport import hwcfg, version_word
from bitcycle.golden import stream as st
from bitcycle.hwif import regmap

CFG_NAMES = ("MODE", "BITS", "M", "K", "N", "ACC_BITS", "OUT_CFG")
CFG_PORTS = {"MODE": "cfg_mode_i", "BITS": "cfg_bits_i", "M": "cfg_m_i", "K": "cfg_k_i", "N": "cfg_n_i",
             "ACC_BITS": "cfg_acc_bits_i"}


class Harness:
    """Clock, reset and the AXI bus functional models around the DUT (cocotbext-axi)."""

    def __init__(self, dut):
        import logging

        from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource

        self.dut = dut
        self.top = hasattr(dut, "s_axil_awvalid")
        p = lambda name: int(getattr(dut, name).value)  # noqa: E731
        self.params = {name: p(name) for name in ("PE", "SIMD", "ACC_BITS", "DATA_W", "THR_MAX", "WMEM_DEPTH",
                                                  "AMEM_DEPTH", "TMEM_DEPTH", "MAX_CHUNKS")}
        self.geo = st.Geometry(pe=self.params["PE"], simd=self.params["SIMD"], data_width=self.params["DATA_W"],
                               thr_max=self.params["THR_MAX"])
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk_i, dut.rst_ni,
                                      reset_active_level=False)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk_i, dut.rst_ni,
                                  reset_active_level=False)
        for bfm in (self.source, self.sink):
            bfm.log.setLevel(logging.WARNING)
        self.axil = None
        if self.top:
            from cocotbext.axi import AxiLiteBus, AxiLiteMaster

            self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk_i, dut.rst_ni,
                                      reset_active_level=False)
            for part in (getattr(self.axil, "write_if", None), getattr(self.axil, "read_if", None)):
                if part is not None:
                    part.log.setLevel(logging.WARNING)

    async def start(self):
        from cocotb.clock import Clock

        dut = self.dut
        cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
        dut.rst_ni.value = 0
        if not self.top:
            dut.start_i.value = 0
            dut.abort_i.value = 0
        await ClockCycles(dut.clk_i, 3)
        dut.rst_ni.value = 1
        await ClockCycles(dut.clk_i, 2)


class PortRegisters:
    """The register view of ``bitcycle_engine``'s configuration ports."""

    def __init__(self, hw: Harness):
        self.hw = hw
        self.shadow = {name: 0 for name in CFG_NAMES}
        self.shadow["ACC_BITS"] = hw.params["ACC_BITS"]
        pr = hw.params
        built = EngineSpec(pe=pr["PE"], simd=pr["SIMD"], acc_bits=pr["ACC_BITS"], stream_bytes=pr["DATA_W"] // 8,
                           weight_words=pr["WMEM_DEPTH"], act_tiles=pr["AMEM_DEPTH"], max_chunks=pr["MAX_CHUNKS"])
        self.hwcfg = hwcfg(built, pr["THR_MAX"], pr["TMEM_DEPTH"])  # the parameters this engine was built with

    async def _pulse(self, port: str) -> None:
        dut = self.hw.dut
        await FallingEdge(dut.clk_i)
        getattr(dut, port).value = 1
        await FallingEdge(dut.clk_i)
        getattr(dut, port).value = 0

    async def write(self, name: str, value: int) -> None:
        dut = self.hw.dut
        if name in self.shadow:
            self.shadow[name] = value
        elif name == "CTRL":
            if value & P.CTRL_ABORT:
                await self._pulse("abort_i")
            if value & P.CTRL_START:
                await FallingEdge(dut.clk_i)
                for reg, port in CFG_PORTS.items():
                    getattr(dut, port).value = self.shadow[reg]
                dut.cfg_out_sel_i.value = regmap.field("OUT_CFG", "OUT_SEL", self.shadow["OUT_CFG"])
                dut.cfg_clip_shift_i.value = regmap.field("OUT_CFG", "CLIP_SHIFT", self.shadow["OUT_CFG"])
                dut.cfg_res_w_i.value = regmap.field("OUT_CFG", "RES_W", self.shadow["OUT_CFG"])
                await self._pulse("start_i")
                await ClockCycles(dut.clk_i, 2)  # (a register write over AXI4-Lite takes cycles)
        else:
            raise KeyError(f"bitcycle_engine has no writable register {name!r}")

    async def read(self, name: str) -> int:
        dut = self.hw.dut
        if name in self.shadow:
            return self.shadow[name]
        if name == "ID":
            return ENGINE_ID
        if name == "VERSION":
            return version_word()
        if name in self.hwcfg:
            return self.hwcfg[name]
        if name == "STATUS":
            if int(dut.busy_o.value):
                # a register read over AXI4-Lite takes cycles; ports are read instantly, so let the
                # clock run while the host polls (the simulator only advances inside requests)
                await ClockCycles(dut.clk_i, 8)
            return ((P.STATUS_BUSY if int(dut.busy_o.value) else 0) | (P.STATUS_DONE if int(dut.done_o.value) else 0)
                    | (P.STATUS_CHECKING if int(dut.checking_o.value) else 0))
        if name == "ERROR":
            return int(dut.error_o.value)
        if name == "CYCLES":
            return int(dut.cycles_o.value)
        raise KeyError(f"bitcycle_engine has no register {name!r}")


class AxiRegisters:
    """Registers of ``bitcycle_top`` over AXI4-Lite, addresses from the generated regmap."""

    def __init__(self, hw: Harness):
        from bitcycle.driver import registers

        self.hw = hw
        self.addr = registers.addresses()

    async def write(self, name: str, value: int) -> None:
        await self.hw.axil.write_dword(self.addr[name], value)

    async def read(self, name: str) -> int:
        return int(await self.hw.axil.read_dword(self.addr[name]))


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
    host, port = os.environ["BITCYCLE_SIM_ADDR"].rsplit(":", 1)
    conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ["BITCYCLE_SIM_KEY"]))
    hw = Harness(dut)
    await hw.start()
    geo = hw.geo
    regs = AxiRegisters(hw) if hw.top else PortRegisters(hw)
    conn.send(("ready", {"top": hw.top, "pe": geo.pe, "simd": geo.simd, "data_width": geo.data_width,
                         "acc_bits": hw.params["ACC_BITS"]}))
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
                while not hw.sink.empty():  # leftovers of an aborted job
                    hw.sink.recv_nowait()
                if len(words):
                    await hw.source.send(AxiStreamFrame(st.words_to_bytes(words, geo)))
                    try:
                        await with_timeout(hw.source.wait(), budget_ns, "ns")
                    except Exception:  # cocotb SimTimeoutError: the engine stopped taking words
                        hw.source.clear()
                        conn.send(("short", np.zeros(0, np.uint64)))
                        continue
                if n_out:
                    try:
                        frame = await with_timeout(hw.sink.recv(), budget_ns, "ns")
                        out = st.bytes_to_words(bytes(frame.tdata), geo)
                    except Exception:  # cocotb SimTimeoutError
                        out = np.zeros(0, np.uint64)
                    if out.size < n_out:
                        restart_sink(hw.sink)
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
