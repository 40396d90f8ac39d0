"""Register and stream transport of engine jobs: program a job's registers, move its packets
through the backend's :class:`~bitcycle.driver.transport.Transport`, wait for DONE, check ERROR,
recover after a fault, and count every operation (jobs, cycles, bytes, register accesses, DMA
transfers, cache syncs).

A job writes only the configuration registers whose value changed since the last job (MODE, BITS,
M, K, N, ACC_BITS, OUT_CFG hold their values in the engine): the cache is dropped whenever the
engine may have been reset or another writer may have touched it (load, recovery, reg_write).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from bitcycle.driver import protocol as P
from bitcycle.driver.planning import result_widths
from bitcycle.driver.transport import Transport, TransportTimeout
from bitcycle.errors import BitCycleError
from bitcycle.golden import stream as S
from bitcycle.hwif import driver_json as DJ
from bitcycle.hwif import regmap

COMPUTE = (P.Mode.FORWARD, P.Mode.BACKWARD_DATA, P.Mode.BACKWARD_WEIGHT)
# what EngineJobs.per_step() averages over training steps
PER_STEP = ("engine_jobs", "dma_transfers", "register_accesses", "cache_syncs", "bytes_sent", "bytes_received")
CONFIG_REGISTERS = ("MODE", "BITS", "M", "K", "N", "ACC_BITS", "OUT_CFG")


@functools.lru_cache(maxsize=None)
def _out_cfg(res_bits: int) -> int:
    """OUT_CFG of a RAW job with ``res_bits``-wide results."""
    return regmap.pack("OUT_CFG", OUT_SEL=S.OUT_RAW, RES_W=S.res_w_code(res_bits))


class EngineJobs:
    """One engine job at a time over ``self.transport``; the counters of all of them."""

    spec: DJ.DriverSpec | None
    transport: Transport | None
    backend: str
    timeout: float
    geo: Any
    _config_cache: dict[str, int]

    def _need_spec(self) -> DJ.DriverSpec:
        if self.spec is None or self.transport is None:
            raise BitCycleError("no model loaded: call Accelerator.load(driver_json) first")
        return self.spec

    def _need_transport(self) -> Transport:
        if self.transport is None:
            raise BitCycleError("the backend is closed: open a new Accelerator")
        return self.transport

    # -- registers and counters -------------------------------------------------------------
    def _reset_counters(self) -> None:
        self._counters: dict[str, Any] = {
            "jobs": {m.name: 0 for m in P.Mode},
            "cycles": {m.name: 0 for m in P.Mode},
            "bit_ops": {m.name: 0 for m in P.Mode},  # binary x b-bit MACs, weighted by b
            "bytes_sent": 0,
            "bytes_received": 0,
            "reg_writes": 0,
            "reg_reads": 0,
            "dma_transfers": 0,  # one per packet: the input, and the output of a compute job
            "cache_syncs": 0,  # one per DMA buffer handed over: flush before send, invalidate after receive
            "engine_seconds": 0.0,  # wall time inside transport calls
            "transport_cpu_seconds": 0.0,  # this process's CPU time inside them (emu: the engine model's arithmetic)
        }
        self._train_totals = {key: 0 for key in PER_STEP}
        self._train_steps = 0

    def reg_write(self, name: str, value: int) -> None:
        self._config_cache = {}  # a write from outside a job: forget what the engine holds
        self._reg_write(name, value)

    def _reg_write(self, name: str, value: int) -> None:
        self._counters["reg_writes"] += 1
        self._need_transport().reg_write(name, int(value))

    def _write_config(self, regs: dict[str, int]) -> None:
        """Write the configuration registers whose value the engine does not hold already."""
        held, self._config_cache = getattr(self, "_config_cache", {}), {}  # empty while writing: a failure forgets
        for name, value in regs.items():
            if held.get(name) != value:
                self._reg_write(name, value)
        self._config_cache = dict(regs)

    def reg_read(self, name: str) -> int:
        self._counters["reg_reads"] += 1
        return int(self._need_transport().reg_read(name))

    def counters(self, reset: bool = False) -> dict:
        """Cycles per mode (from the engine's CYCLES register), jobs, bytes moved, register accesses."""
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._counters.items()}
        out["cycles_total"] = sum(out["cycles"].values())
        out["cycles_source"] = getattr(self.transport, "cycles_source", "engine CYCLES register")
        if reset:
            self._reset_counters()
        return out

    def _per_step_snapshot(self) -> dict[str, int]:
        c = self._counters
        return {"engine_jobs": sum(c["jobs"].values()), "dma_transfers": c["dma_transfers"],
                "register_accesses": c["reg_writes"] + c["reg_reads"], "cache_syncs": c["cache_syncs"],
                "bytes_sent": c["bytes_sent"], "bytes_received": c["bytes_received"]}

    def per_step(self) -> dict[str, float]:
        """Means per training step (train_step calls only, not evaluation) of the counted operations
        since the counters were last reset: engine jobs, DMA transfers, register accesses, cache syncs, bytes."""
        steps = max(self._train_steps, 1)
        # no dict | dict: the board may run Python 3.8 (PYNQ 2.7 images)
        return {**{key: self._train_totals[key] / steps for key in PER_STEP}, "steps": self._train_steps}

    # -- one engine job ----------------------------------------------------------------------
    def _checked(self) -> int:
        """After START: wait (with the deadline) until the engine has checked the configuration;
        its ERROR code if it refused the job, else 0. One STATUS read when the check has passed (as
        it has on a board long before the read arrives); ERROR is read only when the job ended."""
        deadline = time.monotonic() + self.timeout
        while True:
            status = self.reg_read("STATUS")
            if not status & P.STATUS_CHECKING:
                break
            if time.monotonic() > deadline:
                self._recover()
                raise BitCycleError(f"engine still checking its configuration after {self.timeout:g} s "
                                    f"(STATUS={status:#x}); it was aborted")
        if status & P.STATUS_BUSY:
            return 0
        code = self.reg_read("ERROR")
        if not code:
            raise BitCycleError(f"engine ended the job right after START without an ERROR (STATUS={status:#x}): "
                                "did another writer abort it?")
        return code

    def _wait_done(self) -> int:
        deadline = time.monotonic() + self.timeout
        while True:
            status = self.reg_read("STATUS")
            if not status & P.STATUS_BUSY:
                return status
            if time.monotonic() > deadline:
                self._recover()
                raise BitCycleError(f"engine did not finish within {self.timeout:g} s (STATUS={status:#x}); "
                                    "it was aborted and is usable again — raise timeout= for big jobs")
            time.sleep(0.0005)

    def _recover(self) -> None:
        """ABORT, then wait for the engine to close its streams (BUSY low); if the input packet's
        TLAST does not come within a short grace period, a second ABORT stops the drain."""
        try:
            self.reg_write("CTRL", P.CTRL_ABORT)
            deadline = time.monotonic() + min(1.0, self.timeout)
            while self.reg_read("STATUS") & P.STATUS_BUSY:
                if time.monotonic() > deadline:
                    self.reg_write("CTRL", P.CTRL_ABORT)
                    break
                time.sleep(0.0005)
        except Exception:  # the recovery must not mask the original error
            pass

    def _job(self, mode: P.Mode, bits: int, m: int, k: int, n: int, words_in: np.ndarray,
             n_out: int = 0, acc_bits: int = 0, res_bits: int = 32) -> np.ndarray:
        """acc_bits 0: the engine's full width (load jobs); res_bits: the results' stream width."""
        spec = self._need_spec()
        regs = {"MODE": int(mode), "BITS": bits, "M": m, "K": k, "N": n,
                "ACC_BITS": acc_bits or spec.engine.acc_bits, "OUT_CFG": _out_cfg(res_bits)}
        self._write_config(regs)
        check_stream = getattr(self.transport, "check_stream", None)  # duck-typed transports may lack it
        if check_stream is not None:
            check_stream(int(words_in.size), n_out)  # e.g. the DMA's length limit, before the engine starts
        self._reg_write("CTRL", P.CTRL_START)
        code = self._checked()
        if code:  # configuration rejected before any data moved
            self._recover()
            raise BitCycleError(f"engine rejected {mode.name} M={m} K={k} N={n} bits={bits}: {P.decode_error(code)}")
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            out = self._need_transport().stream(words_in, n_out, self.timeout)
        except TransportTimeout as err:
            code = self.reg_read("ERROR")
            self._recover()
            if code:
                raise BitCycleError(f"engine stopped {mode.name} M={m} K={k} N={n} bits={bits}: {P.decode_error(code)}; "
                                    "it was aborted and is usable again") from None
            # the transport says what failed (deadline, DMA error bit, packet length): keep its words
            raise BitCycleError(f"{mode.name} M={m} K={k} N={n} bits={bits} stream failed (deadline {self.timeout:g} s): "
                                f"{err}; the engine was aborted and is usable again") from None
        finally:
            self._counters["engine_seconds"] += time.perf_counter() - t0
            self._counters["transport_cpu_seconds"] += time.process_time() - c0
        self._wait_done()
        code = self.reg_read("ERROR")
        if code:
            self._recover()
            raise BitCycleError(f"engine flagged {mode.name} M={m} K={k} N={n} bits={bits}: {P.decode_error(code)}")
        cycles = self.reg_read("CYCLES")
        c = self._counters
        c["jobs"][mode.name] += 1
        c["cycles"][mode.name] += cycles
        c["bit_ops"][mode.name] += bits * m * k * n if mode in COMPUTE else 0
        c["bytes_sent"] += int(words_in.size) * spec.engine.stream_bytes
        c["bytes_received"] += int(out.size) * spec.engine.stream_bytes
        c["dma_transfers"] += 1 + (n_out > 0)
        c["cache_syncs"] += 1 + (n_out > 0)
        return out

    def _check_bits(self, bits, what: str = "bits") -> int:
        spec = self._need_spec()
        hi = spec.engine.max_bits
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= hi:
            raise BitCycleError(f"{what}={bits!r} is outside the engine's range 1..{hi}")
        return int(bits)

    @staticmethod
    def _check_operands(binary, ints, bits):
        try:
            from bitcycle.golden import check_binary, check_ints

            return check_binary(binary), check_ints(ints, bits)
        except ValueError as err:
            raise BitCycleError(str(err)) from None

    def _pack(self, mode: P.Mode, bits: int, **operands) -> np.ndarray:
        """A job's input packet. The operands are the driver's own (built by it, or checked where
        they entered): the vectorised packers of :mod:`bitcycle.driver.protocol`, no checks."""
        if mode == P.Mode.LOAD_WEIGHTS:
            return P.pack_binary_tiles(operands["binary"], self.geo)
        if mode == P.Mode.BACKWARD_WEIGHT:
            dy = P.pack_vectors(np.asarray(operands["ints"]).T, bits, self.geo.simd)
            return np.concatenate([P.pack_binary_tiles(operands["binary"], self.geo), dy])
        if mode in (P.Mode.FORWARD, P.Mode.BACKWARD_DATA):
            return P.pack_vectors(operands["ints"], bits, self.geo.chunk(int(mode)))
        try:  # LOAD_THRESHOLDS (unused by the driver), unknown modes: the golden packer and its checks
            return S.pack_input(int(mode), self.geo, bits, **operands)
        except ValueError as err:
            raise BitCycleError(str(err)) from None

    def _compute(self, mode: P.Mode, bits: int, m: int, k: int, n: int, **operands) -> np.ndarray:
        """One compute job: its results C-contiguous in their stream width (int8/16/32, exact)."""
        words = self._pack(mode, bits, **operands)
        acc_bits, res_bits = result_widths(bits, {P.Mode.FORWARD: k, P.Mode.BACKWARD_DATA: m, P.Mode.BACKWARD_WEIGHT: n}[mode])
        out = self._job(mode, bits, m, k, n, words, n_out=S.output_words(int(mode), self.geo, m, k, n, res_bits),
                        acc_bits=acc_bits, res_bits=res_bits)
        return P.unpack_output(out, int(mode), self.geo, m, k, n, res_bits, dtype=None)
