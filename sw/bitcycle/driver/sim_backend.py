"""``sim`` backend: the same driver against the Verilated engine, in a child process.

:class:`SimTransport` listens on a loopback socket (``multiprocessing.connection``, random
authentication key), starts ``cocotb_tools.runner`` in a child Python process with
:mod:`bitcycle.driver.sim_server` as the cocotb test module, and forwards each register access
and stream transfer as one request. The simulator build is cached under ``build/sim/``; the
child is stopped by :meth:`close` (also on garbage collection / interpreter exit). Usable from a
plain script or a notebook: no event loop is needed in the caller.

DUT: ``bitcycle_top`` (AXI4-Lite registers from the generated regmap) when it and regmap.py
exist, else the ``bitcycle_engine`` core with its configuration ports (see sim_server).
"""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import sys
import time
import weakref
from multiprocessing.connection import Connection, Listener
from pathlib import Path

import numpy as np

from bitcycle.driver.transport import Transport, TransportTimeout
from bitcycle.errors import BitCycleError
from bitcycle.hwif.rtl import rtl_sources

REPO = Path(__file__).resolve().parents[3]
SIM_DIR = REPO / "sim"
RTL_DIR = REPO / "hw" / "rtl"

WALL_FLOOR_S = 120.0  # wall seconds a request may take before the simulator counts as dead

_LAUNCH = """
import sys
sys.path.insert(0, {sim_dir!r})
import rtl_runner
rtl_runner.run({toplevel!r}, {sources!r}, "bitcycle.driver.sim_server", parameters={parameters!r},
               tag={tag!r}, seed=1)
"""


def engine_sources() -> list[str]:
    return rtl_sources("bitcycle_engine")


def top_sources() -> list[str] | None:
    """Sources of bitcycle_top when the engine has one (and its register map is generated)."""
    if not (RTL_DIR / "bitcycle_top.sv").is_file():
        return None
    try:
        from bitcycle.hwif import regmap  # noqa: F401
    except ImportError:
        return None
    return rtl_sources("bitcycle_top")


def build_parameters(engine, toplevel: str = "bitcycle_top") -> dict[str, int]:
    """The parameters the Verilated ``toplevel`` is built with: driver.json's ``engine.rtl_parameters``
    (what bd.tcl sets on the board), or the same dict derived from the engine section when the model
    was built in memory. The engine-only DUT takes the subset its module declares."""
    from bitcycle.hwif.top_params import module_parameters, rtl_parameters

    params = dict(engine.rtl_parameters) if engine.rtl_parameters else rtl_parameters(engine, RTL_DIR / "bitcycle_top.sv")
    declared = module_parameters(RTL_DIR / f"{toplevel}.sv", toplevel)
    if toplevel == "bitcycle_top" and set(params) != set(declared):
        raise BitCycleError(f"driver.json's engine.rtl_parameters name {sorted(params)} but hw/rtl/bitcycle_top.sv declares "
                            f"{sorted(declared)}: re-run `bitcycle compile` for this source tree")
    return {name: value for name, value in params.items() if name in declared}


class SimTransport(Transport):
    name = "sim"

    def __init__(self, engine, timeout: float = 10.0, start_timeout: float = 600.0, dut: str = "auto",
                 verbose: bool = False):
        if not (SIM_DIR / "rtl_runner.py").is_file() or not (RTL_DIR / "bitcycle_engine.sv").is_file():
            raise BitCycleError(f"the sim backend needs the BitCycle source tree (sim/, hw/rtl/ under {REPO}); "
                                "it is not part of a board install — use --backend emu")
        self.timeout = timeout
        if dut not in ("auto", "top", "engine"):
            raise BitCycleError(f"dut={dut!r}: choose auto, top or engine")
        sources = top_sources() if dut in ("auto", "top") else None
        if dut == "top" and sources is None:
            raise BitCycleError("dut='top' but hw/rtl/bitcycle_top.sv or the generated regmap.py is missing: run `make regs`")
        toplevel = "bitcycle_top" if sources else "bitcycle_engine"
        params = build_parameters(engine, toplevel)
        tag = "drv_" + "_".join(f"{k.lower()}{v}" for k, v in params.items())
        self.top = toplevel == "bitcycle_top"
        key = secrets.token_bytes(16)
        self._listener = Listener(("127.0.0.1", 0), authkey=key)
        host, port = self._listener.address
        env = dict(os.environ, BITCYCLE_SIM_ADDR=f"{host}:{port}", BITCYCLE_SIM_KEY=key.hex())
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")  # verilated.mk calls `python`
        # an incremental (split) Verilator rebuild after an RTL change needs the PCH include flag
        env.setdefault("MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include")
        if self.top:
            env["SIM"] = "verilator"  # Icarus 11 rejects the generated register block's unpacked structs
        code = _LAUNCH.format(sim_dir=str(SIM_DIR), toplevel=toplevel, sources=sources or engine_sources(),
                              parameters=params, tag=tag)
        # one log per run (never overwritten: a failure's evidence stays), named in every error
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(2)}"
        self.log_path = REPO / "build" / "sim" / "driver-logs" / f"{toplevel}_{tag}.{stamp}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self._proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=str(REPO),
                                      stdout=None if verbose else self._log, stderr=subprocess.STDOUT)
        self._conn: Connection | None = None
        self._finalizer = weakref.finalize(self, SimTransport._stop, self._proc, self._listener, self._log)
        atexit.register(self._finalizer)
        self._accept(start_timeout)
        self.info = self._expect("ready", start_timeout)
        if (self.info["pe"], self.info["simd"], self.info["data_width"]) != (engine.pe, engine.simd, 8 * engine.stream_bytes):
            self.close()
            raise BitCycleError(f"simulated engine is PE={self.info['pe']} SIMD={self.info['simd']} "
                                f"DATA_W={self.info['data_width']}, driver.json says {engine.pe}/{engine.simd}/"
                                f"{8 * engine.stream_bytes}")

    def _accept(self, timeout: float) -> None:
        # Listener.accept() blocks; poll the child so a failed build is reported, not waited on
        import socket

        self._listener._listener._socket.settimeout(1.0)  # type: ignore[attr-defined]  # CPython's SocketListener
        deadline = time.monotonic() + timeout
        while self._conn is None:
            try:
                self._conn = self._listener.accept()
            except (socket.timeout, TimeoutError):
                if self._proc.poll() is not None:
                    self.close()
                    raise BitCycleError(f"the simulator exited before connecting (build failed?); see {self.log_path}") from None
                if time.monotonic() > deadline:
                    self.close()
                    raise BitCycleError(f"the simulator did not start within {timeout:g} s; see {self.log_path}") from None

    def _expect(self, status: str, timeout: float):
        assert self._conn is not None, "_expect before the simulator connected"
        if not self._conn.poll(timeout):
            alive = self._proc.poll() is None
            raise TransportTimeout(f"simulator gave no answer within {timeout:g} s of wall time"
                                   + (f" (still running: a loaded machine? see {self.log_path})" if alive
                                      else f" (it exited; see {self.log_path})"))
        try:
            got, value = self._conn.recv()
        except EOFError:
            raise BitCycleError(f"the simulator process ended; see {self.log_path}") from None
        if got == "error":
            raise BitCycleError(f"simulator: {value}")
        if got != status and not (status == "ok" and got == "short"):
            raise BitCycleError(f"simulator answered {got!r}, expected {status!r}")
        return (got, value) if status == "ok" else value

    def _request(self, *req, timeout: float | None = None):
        if self._conn is None:
            raise BitCycleError("the sim backend is closed")
        self._conn.send(req)
        return self._expect("ok", max(self.timeout, WALL_FLOOR_S) if timeout is None else timeout)

    def child_cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the simulator's process tree (Linux /proc):
        the launcher and the Verilated binary it starts."""
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime+stime
                except (OSError, IndexError, ValueError):
                    continue
        tree, total, grew = {self._proc.pid}, 0, True
        while grew:
            grew = False
            for pid, (ppid, _) in stats.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        total = sum(stats[pid][1] for pid in tree if pid in stats)
        return total / os.sysconf("SC_CLK_TCK")

    def reg_write(self, name: str, value: int) -> None:
        self._request("write", name, int(value))

    def reg_read(self, name: str) -> int:
        return int(self._request("read", name)[1])

    def stream(self, words_in: np.ndarray, n_out: int, timeout: float) -> np.ndarray:
        # A hung job is caught inside the simulator by its simulated-time budget (sim_server), so
        # the wall-clock limit only has to catch a dead simulator: at least WALL_FLOOR_S, which a
        # loaded machine needs, plus ~1 ms per word for long transfers.
        wall = max(timeout, WALL_FLOOR_S) + 1e-3 * (len(words_in) + n_out)
        status, out = self._request("stream", np.asarray(words_in, dtype=np.uint64), int(n_out), timeout=wall)
        out = np.asarray(out, dtype=np.uint64)
        if status == "short" or out.size < n_out:
            raise TransportTimeout(f"stream receive got {out.size} of {n_out} words")
        return out[:n_out]

    @staticmethod
    def _stop(proc, listener, log) -> None:
        try:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        finally:
            listener.close()
            log.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(("close",))
                self._conn.poll(10) and self._conn.recv()
            except (OSError, EOFError):
                pass
            self._conn.close()
            self._conn = None
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self._finalizer()
