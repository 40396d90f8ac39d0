"""``Accelerator``: one driver API over three backends (``emu``, ``sim``, ``pynq``).

All the logic — register programming, stream packing, shape/bit checks, weight placement,
counters, the training step — is here and shared; a backend is only a
:class:`~bitcycle.driver.transport.Transport` (register read/write, one stream round trip).

A training step (Wang et al.'s memory-efficient BNN training, with CycleBNN's cyclic gradient
precision) runs the three products on the engine:

    forward          z_l  = W_l · a_l               (FORWARD, bits = in_bits: 8 for layer 0, 1 after)
    backward-data    da_l = W_lᵀ · q(dz_l)          (BACKWARD_DATA, bits = b_g from the schedule)
    backward-weight  dW_l = q(dz_l) · sign(a_l)ᵀ    (BACKWARD_WEIGHT, bits = b_g; only sign(a) is kept)

and BatchNorm, the loss, the gradient quantiser, Adam on latent weights and the schedule on the
host; the new sign(W) is written back into the engine's weight memory. Layer 0's input is 8-bit,
not binary: its weight gradient is Σ_p w_p·(q·S_pᵀ + rowsum q)/2 over the bipolar bit-planes S_p
of the input, i.e. ``in_bits`` BACKWARD_WEIGHT passes, exact in integers.

Jobs larger than the engine's memories (WMEM/AMEM depth, MAX_CHUNKS) or whose worst-case sum
could overflow ACC_BITS are cut into several jobs whose integer results are summed or stacked,
so every product still equals the golden model exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bitcycle.hwif import driver_json as DJ
from bitcycle.driver import protocol as P
from bitcycle.driver.hostmath import (Adam, BatchNorm, PerTensorNorm, quantize_grad, quantize_input, sign_pm1,
                                     softmax_xent)
from bitcycle.driver.transport import HWCFG_FIELDS, EmuTransport, Transport, TransportTimeout, field
from bitcycle.errors import BitCycleError
from bitcycle.golden import bit_planes
from bitcycle.golden import stream as S

BACKENDS = ("emu", "sim", "pynq")
COMPUTE = (P.Mode.FORWARD, P.Mode.BACKWARD_DATA, P.Mode.BACKWARD_WEIGHT)
# what Accelerator.per_step() averages over training steps
PER_STEP = ("engine_jobs", "dma_transfers", "register_accesses", "cache_syncs", "bytes_sent", "bytes_received")


class Accelerator:
    """Drive a BitCycle engine.

    Parameters
    ----------
    backend: "emu" (numpy golden model), "sim" (Verilated RTL in a child process) or "pynq" (board).
    bitfile: overlay .bit (pynq) — a path, or a name looked up next to driver.json and in the package.
    driver_json: path / dict / DriverSpec; ``None`` defers to :meth:`load`.
    timeout: seconds for every wait (stream transfer, DONE); a hang raises BitCycleError.
    seed: seeds the latent-weight init and the stochastic rounding (emu and sim then agree bit for bit).
    """

    def __init__(self, backend: str = "emu", bitfile: str | None = None, driver_json=None,
                 timeout: float = 10.0, seed: int = 0, lr: float = 1e-2, quantise_weight_grad: bool = True,
                 grad_scale: str = "row", grad_block: int = 16, transport: Transport | None = None,
                 **backend_options):
        if backend not in BACKENDS:
            raise BitCycleError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        self.backend = backend
        self.bitfile = bitfile
        self.timeout = float(timeout)
        self.seed = int(seed)
        self.lr = float(lr)
        self.quantise_weight_grad = bool(quantise_weight_grad)
        if grad_scale not in ("row", "tensor"):
            raise BitCycleError(f"grad_scale {grad_scale!r} is unknown; choose row or tensor")
        self.grad_scale = grad_scale
        if isinstance(grad_block, bool) or not isinstance(grad_block, int) or grad_block < 0:
            raise BitCycleError(f"grad_block {grad_block!r} must be an integer >= 0 (0 = one scale per whole row)")
        self.grad_block = grad_block if grad_scale == "row" else 0
        self._backend_options = backend_options
        self.transport: Transport | None = transport
        self.spec: DJ.DriverSpec | None = None
        self.schedule = None
        self.step = 0
        self.grad_bits: int | None = None
        self._reset_counters()
        if backend == "pynq" and transport is None:
            # fail fast, before any file lookup: off-board there is nothing to drive
            from bitcycle.driver.pynq_backend import check_device

            check_device()
        if driver_json is not None:
            self.load(driver_json)

    # -- lifecycle ---------------------------------------------------------------------------
    def _open_transport(self, spec: DJ.DriverSpec) -> Transport:
        if self.backend == "emu":
            return EmuTransport(spec.engine)
        if self.backend == "sim":
            from bitcycle.driver.sim_backend import SimTransport

            return SimTransport(spec.engine, timeout=self.timeout, **self._backend_options)
        from bitcycle.driver.pynq_backend import PynqTransport

        return PynqTransport(spec, bitfile=self.bitfile, timeout=self.timeout)

    def load(self, driver_json) -> DJ.DriverSpec:
        """Load a model description, open the backend, check the overlay matches, place and write weights."""
        spec = DJ.load(driver_json)
        if self.transport is None:
            self.transport = self._open_transport(spec)
        self.spec = spec
        self.geo = P.geometry(spec.engine)
        self._check_identity()
        self.resident: tuple[int, int, int, int, int] | None = None  # (layer, r0, r1, c0, c1) in the engine
        self._init_params()
        self._recover()  # a job left running by a previous session: close its streams
        for i in range(len(spec.layers)):
            self.write_weights(i, sign_pm1(self.latent[i]))
        self.grad_bits = spec.grad_bits["max"]
        return spec

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _need_spec(self) -> DJ.DriverSpec:
        if self.spec is None or self.transport is None:
            raise BitCycleError("no model loaded: call Accelerator.load(driver_json) first")
        return self.spec

    def _need_transport(self) -> Transport:
        if self.transport is None:
            raise BitCycleError("the backend is closed: open a new Accelerator")
        return self.transport

    def _check_identity(self) -> None:
        """ID, VERSION.MAJOR and the build parameters in HWCFG0..2 must match driver.json's engine."""
        eng = self._need_spec().engine
        got_id, got_ver = self.reg_read("ID"), field("VERSION", "MAJOR", self.reg_read("VERSION"))
        if got_id != eng.id or got_ver != eng.version:
            raise BitCycleError(
                f"overlay is engine ID {got_id:#010x} v{got_ver} but driver.json expects {eng.id:#010x} "
                f"v{eng.version}: load the bitstream this driver.json was compiled with")
        regs = {r: self.reg_read(r) for r in ("HWCFG0", "HWCFG1", "HWCFG2")}
        wrong = [f"{name}={field(reg, name, regs[reg])} (driver.json: {get(eng)})"
                 for reg, name, get in HWCFG_FIELDS if field(reg, name, regs[reg]) != get(eng)]
        if wrong:
            overlay = getattr(self.transport, "overlay_path", f"the {self.backend} engine")
            raise BitCycleError(f"overlay {overlay} was built with other parameters than "
                                f"{self._need_spec().source or 'driver.json (in memory)'} says: {', '.join(wrong)}; "
                                "recompile or pick the matching driver.json")

    def _init_params(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.latent, self.norms = [], []
        norms = {"batchnorm": BatchNorm, "pertensor": PerTensorNorm}
        for layer in self._need_spec().layers:
            # latent weights uniform in [−1, 1] and clipped there, as the torch zoo
            self.latent.append(rng.uniform(-1.0, 1.0, (layer.out_features, layer.in_features)))
            self.norms.append(norms[layer.norm](layer.out_features) if layer.norm in norms else None)
        params = self._need_spec().params_path()
        if params is not None:
            self._load_params(params)
        self.optimizer = Adam(lr=self.lr)
        self.rng = np.random.default_rng(self.seed + 1)
        self.sign_w: list[Any] = [None] * len(self._need_spec().layers)  # ±1 int8 [M, K] once written

    def _load_params(self, path: Path) -> None:
        if not Path(path).is_file():
            raise BitCycleError(f"driver.json params file {path} not found")
        data = np.load(path)
        for i, layer in enumerate(self._need_spec().layers):
            key = f"{layer.name}.weight"
            if key not in data:
                raise BitCycleError(f"{path}: missing {key!r}")
            w = np.asarray(data[key], dtype=np.float64)
            if w.shape != self.latent[i].shape:
                raise BitCycleError(f"{path}: {key} has shape {list(w.shape)}, driver.json says {list(self.latent[i].shape)}")
            self.latent[i] = w
            bn = self.norms[i]
            if bn is not None and f"{layer.name}.bn_mean" in data:
                bn.running_mean = np.asarray(data[f"{layer.name}.bn_mean"], np.float64)
                bn.running_var = np.asarray(data[f"{layer.name}.bn_var"], np.float64)
                bn.gamma = np.asarray(data[f"{layer.name}.bn_gamma"], np.float64)
                bn.beta = np.asarray(data[f"{layer.name}.bn_beta"], np.float64)

    def save_params(self, path) -> Path:
        """Latent weights and BatchNorm state as the ``params`` .npz driver.json can point to."""
        spec = self._need_spec()
        arrays = {}
        for i, layer in enumerate(spec.layers):
            arrays[f"{layer.name}.weight"] = self.latent[i]
            bn = self.norms[i]
            if bn is not None:
                arrays.update({f"{layer.name}.bn_mean": bn.running_mean, f"{layer.name}.bn_var": bn.running_var,
                               f"{layer.name}.bn_gamma": bn.gamma, f"{layer.name}.bn_beta": bn.beta})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub: ** could fill allow_pickle
        return path

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
        }
        self._train_totals = {key: 0 for key in PER_STEP}
        self._train_steps = 0

    def reg_write(self, name: str, value: int) -> None:
        self._counters["reg_writes"] += 1
        self._need_transport().reg_write(name, int(value))

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
        return {key: self._train_totals[key] / steps for key in PER_STEP} | {"steps": self._train_steps}

    # -- one engine job ----------------------------------------------------------------------
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
             n_out: int = 0) -> np.ndarray:
        spec = self._need_spec()
        regs = {"MODE": int(mode), "BITS": bits, "M": m, "K": k, "N": n,
                "ACC_BITS": spec.engine.acc_bits, "OUT_CFG": S.OUT_RAW}
        for name, value in regs.items():
            self.reg_write(name, value)
        check_stream = getattr(self.transport, "check_stream", None)  # duck-typed transports may lack it
        if check_stream is not None:
            check_stream(int(words_in.size), n_out)  # e.g. the DMA's length limit, before the engine starts
        self.reg_write("CTRL", P.CTRL_START)
        code = self.reg_read("ERROR")
        if code:  # configuration rejected before any data moved
            self._recover()
            raise BitCycleError(f"engine rejected {mode.name} M={m} K={k} N={n} bits={bits}: {P.decode_error(code)}")
        t0 = time.perf_counter()
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

    # -- public operations -------------------------------------------------------------------
    def _layer_index(self, layer) -> int:
        spec = self._need_spec()
        if isinstance(layer, (int, np.integer)):
            spec.layer(int(layer))
            return int(layer)
        return spec.layers.index(spec.layer(layer))

    def _pack(self, mode: P.Mode, bits: int, **operands) -> np.ndarray:
        try:
            if mode == P.Mode.LOAD_WEIGHTS:
                return P.pack_binary_tiles(operands["binary"], self.geo)
            if mode == P.Mode.BACKWARD_WEIGHT:
                dy = S.pack_vectors(np.asarray(operands["ints"]).T, bits, self.geo.simd)
                return np.concatenate([P.pack_binary_tiles(operands["binary"], self.geo), dy])
            return S.pack_input(int(mode), self.geo, bits, **operands)
        except ValueError as err:
            raise BitCycleError(str(err)) from None

    def _compute(self, mode: P.Mode, bits: int, m: int, k: int, n: int, **operands) -> np.ndarray:
        words = self._pack(mode, bits, **operands)
        out = self._job(mode, bits, m, k, n, words, n_out=S.output_words(int(mode), self.geo, m, k, n))
        return S.unpack_output(out, int(mode), self.geo, m, k, n)

    def _max_chunks(self, bits: int, chunk: int) -> int:
        """Chunks per reduction so the engine's worst case len·2^(bits−1) fits ACC_BITS (else ERROR.OVERFLOW)."""
        e = self._need_spec().engine
        max_len = ((1 << (e.acc_bits - 1)) - 1) >> (bits - 1 if bits > 1 else 0)
        if max_len < chunk:
            raise BitCycleError(f"the engine's ACC_BITS={e.acc_bits} cannot hold even one {chunk}-lane chunk at "
                                f"bits={bits}; use fewer bits or an overlay with wider accumulators")
        return min(e.max_chunks, max_len // chunk)

    def _weight_blocks(self, m: int, k: int, col_bits: int, row_bits: int) -> list[tuple[int, int, int, int]]:
        """W[M, K] cut into blocks that fit the weight memory, the per-vector chunk limit and the
        accumulator (FORWARD reduces over the columns at ``col_bits``, BACKWARD_DATA over the rows
        at ``row_bits``); one block structure per layer, so a block stays resident across modes."""
        e = self._need_spec().engine
        gk = min(-(-k // e.simd), self._max_chunks(col_bits, e.simd), e.weight_words)
        gm = min(-(-m // e.pe), self._max_chunks(row_bits, e.pe), max(e.weight_words // gk, 1))
        rb, cb = gm * e.pe, gk * e.simd
        if self.grad_block:
            # block-scaled dy: a BACKWARD_DATA job sums over its rows, so its rows must share one
            # scale: row blocks divide grad_block (and start at multiples of it)
            rb = max(d for d in range(1, min(rb, self.grad_block) + 1) if self.grad_block % d == 0)
        return [(r0, min(r0 + rb, m), c0, min(c0 + cb, k)) for r0 in range(0, m, rb) for c0 in range(0, k, cb)]

    def _make_resident(self, i: int, block: tuple[int, int, int, int]) -> None:
        if self.resident != (i, *block):
            r0, r1, c0, c1 = block
            w = np.ascontiguousarray(self.sign_w[i][r0:r1, c0:c1])
            self._job(P.Mode.LOAD_WEIGHTS, 1, r1 - r0, c1 - c0, 1, self._pack(P.Mode.LOAD_WEIGHTS, 1, binary=w))
            self.resident = (i, *block)

    def _backward_weight(self, sx: np.ndarray, dy: np.ndarray, bits: int) -> np.ndarray:
        """dW[M, K] = dy[M, N] · sx[K, N]ᵀ, split so sign(x) fits the activation memory (exact sums)."""
        e = self._need_spec().engine
        (k, n), m = sx.shape, dy.shape[0]
        gn = min(-(-n // e.simd), self._max_chunks(bits, e.simd), e.act_tiles)
        nb = gn * e.simd
        kb = e.pe * max(e.act_tiles // gn, 1)
        dw = np.zeros((m, k), dtype=np.int64)
        for k0 in range(0, k, kb):
            for n0 in range(0, n, nb):
                part_x = np.ascontiguousarray(sx[k0:k0 + kb, n0:n0 + nb])
                part_dy = np.ascontiguousarray(dy[:, n0:n0 + nb])
                dw[:, k0:k0 + kb] += self._compute(P.Mode.BACKWARD_WEIGHT, bits, m, part_x.shape[0], part_x.shape[1],
                                                   binary=part_x, ints=part_dy)
        return dw

    def write_weights(self, layer, sign_w) -> None:
        """Set ±1 weights [out, in] of ``layer`` (name or index); they go into the engine's weight
        memory now if that layer's block is resident, else when a job next needs them (the engine
        holds one weight block at a time; layers larger than its memory are cut into blocks)."""
        i = self._layer_index(layer)
        spec = self._need_spec().layers[i]
        w = np.asarray(sign_w)
        if w.shape != (spec.out_features, spec.in_features):
            raise BitCycleError(f"write_weights({spec.name!r}): got shape {list(w.shape)}, the layer is "
                                f"[out, in] = [{spec.out_features}, {spec.in_features}]")
        w, _ = self._check_operands(w, np.zeros((w.shape[1], 1), np.int64), 2)
        self.sign_w[i] = w.copy()
        if self.resident is not None and self.resident[0] == i:
            block = self.resident[1:]
            self.resident = None
            self._make_resident(i, block)

    def set_bits(self, bits: int) -> None:
        """Gradient bit-width of the next backward products (within driver.json's grad_bits and the engine's)."""
        bits = self._check_bits(bits, "grad bits")
        gb = self._need_spec().grad_bits
        if not gb["min"] <= bits <= gb["max"]:
            raise BitCycleError(f"grad bits {bits} outside driver.json's grad_bits {gb['min']}..{gb['max']}")
        self.grad_bits = bits

    def set_schedule(self, schedule) -> None:
        """Any object with ``.bits(step) -> int`` (e.g. bitcycle.quant.schedule.CyclicSchedule)."""
        if not hasattr(schedule, "bits"):
            raise BitCycleError("schedule must have a .bits(step) method")
        self.schedule = schedule

    def matmul(self, binary, ints, bits: int) -> np.ndarray:
        """binary[M, K] (±1) @ ints[K, N] on the engine: exactly golden's ``bitserial_matmul``.

        Runs as BACKWARD_WEIGHT jobs (the binary operand streamed in, weight memory untouched):
        dW[N, M] = intsᵀ · binaryᵀ, transposed back.
        """
        self._need_spec()
        bits = self._check_bits(bits)
        binary, ints = self._check_operands(binary, ints, bits)
        if binary.shape[1] != ints.shape[0]:
            raise BitCycleError(f"matmul: binary is [M,K]={list(binary.shape)} but ints is [K,N]={list(ints.shape)}")
        return self._backward_weight(binary, np.ascontiguousarray(ints.T), bits).T.copy()

    def _layer_operand(self, i: int, ints, rows: int, what: str, bits: int) -> np.ndarray:
        ints = np.asarray(ints)
        if ints.ndim != 2 or ints.shape[0] != rows:
            raise BitCycleError(f"{what} {self._need_spec().layers[i].name}: input must be [{rows}, N], got {list(ints.shape)}")
        return self._check_operands(np.ones((1, 1), np.int8), ints, bits)[1]

    def forward_layer(self, layer, ints, bits: int | None = None) -> np.ndarray:
        """y = sign(W) · x for ``layer``: x [in, N] → int64 [out, N] (FORWARD)."""
        i = self._layer_index(layer)
        ls = self._need_spec().layers[i]
        bits = self._check_bits(ls.in_bits if bits is None else bits)
        x = self._layer_operand(i, ints, ls.in_features, "forward", bits)
        y = np.zeros((ls.out_features, x.shape[1]), dtype=np.int64)
        grad_max = self._need_spec().grad_bits["max"]
        for block in self._weight_blocks(ls.out_features, ls.in_features, max(bits, ls.in_bits), grad_max):
            r0, r1, c0, c1 = block
            self._make_resident(i, block)
            y[r0:r1] += self._compute(P.Mode.FORWARD, bits, r1 - r0, c1 - c0, x.shape[1],
                                      ints=np.ascontiguousarray(x[c0:c1]))
        return y

    def backward_data(self, layer, ints, bits: int | None = None, row_scales=None) -> np.ndarray:
        """dx = sign(W)ᵀ · dy for ``layer``: dy [out, N] → int64 [in, N] (BACKWARD_DATA, W read transposed).

        ``row_scales`` [out, N] (dy's block scales, constant over each run of ``grad_block`` rows):
        each job's exact integer result is multiplied by its rows' scale → float64 dx."""
        i = self._layer_index(layer)
        ls = self._need_spec().layers[i]
        bits = self._check_bits(self.grad_bits if bits is None else bits)
        dy = self._layer_operand(i, ints, ls.out_features, "backward_data", bits)
        scaled = row_scales is not None
        if scaled:
            row_scales = np.broadcast_to(np.asarray(row_scales, dtype=np.float64), dy.shape)
        dx = np.zeros((ls.in_features, dy.shape[1]), dtype=np.float64 if scaled else np.int64)
        # reverse block order: the block the forward pass left resident is used first
        grad_max = max(bits, self._need_spec().grad_bits["max"])
        for block in reversed(self._weight_blocks(ls.out_features, ls.in_features, ls.in_bits, grad_max)):
            r0, r1, c0, c1 = block
            self._make_resident(i, block)
            part = self._compute(P.Mode.BACKWARD_DATA, bits, r1 - r0, c1 - c0, dy.shape[1],
                                 ints=np.ascontiguousarray(dy[r0:r1]))
            dx[c0:c1] += part * row_scales[r0] if scaled else part
        return dx

    def weight_grad(self, acts, q, in_bits: int, bits: int) -> np.ndarray:
        """Exact integer dW = q · actsᵀ: q [out, B] (b-bit codes), acts [in, B] → [out, in] (BACKWARD_WEIGHT).

        Binary acts (in_bits = 1): one pass. Integer acts (layer 0): one pass per bipolar bit-plane
        S_p of acts, dW = Σ_p w_p·(q·S_pᵀ + rowsum(q))/2 (w_p = 2^p, −2^(b−1) for the MSB), exact.
        """
        q = np.asarray(q)
        if in_bits == 1:
            return self._backward_weight(np.asarray(acts), q, bits)
        planes = bit_planes(np.asarray(acts, dtype=np.int64), in_bits)  # 0/1, [in_bits, in, B]
        rowsum = q.astype(np.int64).sum(axis=1)[:, None]
        total = np.zeros((q.shape[0], acts.shape[0]), dtype=np.int64)
        for p, plane in enumerate(planes):
            bipolar = np.where(plane > 0, 1, -1).astype(np.int8)
            twice = self._backward_weight(bipolar, q, bits) + rowsum  # = 2 · q·P_pᵀ exactly
            weight = -(1 << p) if p == in_bits - 1 else (1 << p)
            total += weight * (twice // 2)
        return total

    # -- the model ---------------------------------------------------------------------------
    def quantize(self, x) -> np.ndarray:
        spec = self._need_spec()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != spec.input.features:
            raise BitCycleError(f"input has {x.shape[1]} features per sample, the model expects {spec.input.features}")
        return quantize_input(x, spec.input.bits, spec.input.scale, spec.input.offset)

    def _forward(self, x, train: bool):
        spec = self._need_spec()
        a = self.quantize(x).T  # [in, B]
        caches = []
        for i, ls in enumerate(spec.layers):
            z = self.forward_layer(i, a, ls.in_bits).astype(np.float64)
            bn = self.norms[i]
            y, bn_cache = bn.forward(z, train) if bn is not None else (z, None)
            caches.append({"a": a, "bn": bn_cache, "mask": np.abs(y) <= 1.0})
            if ls.act == "sign":
                a = sign_pm1(y)  # only the sign of an activation is kept for backward (1 bit)
            else:
                a = y
        return a.T, caches  # logits [B, C]

    def forward(self, x) -> np.ndarray:
        """Inference logits [B, classes] (running BatchNorm statistics)."""
        logits, _ = self._forward(x, train=False)
        return logits

    def predict(self, x) -> np.ndarray:
        return np.argmax(self.forward(x), axis=1)

    def train_step(self, x, y) -> dict:
        """One SGD step on a batch: the products on the engine, the rest on the host. Returns metrics."""
        spec = self._need_spec()
        y = np.asarray(y)
        x = np.asarray(x)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise BitCycleError(f"labels must be a 1-D array with one label per sample ({x.shape[0]}), got {list(y.shape)}")
        if y.size and (y.min() < 0 or y.max() >= spec.classes):
            raise BitCycleError(f"labels must be in 0..{spec.classes - 1}, found {int(y.min())}..{int(y.max())}")
        if self.schedule is not None:
            self.set_bits(int(self.schedule.bits(self.step)))
        bits = self._check_bits(self.grad_bits, "grad_bits")  # set by load()/set_bits()
        before = self._per_step_snapshot()
        logits, caches = self._forward(x, train=True)
        loss, dlogits, _ = softmax_xent(logits, y)
        g = dlogits.T  # [C, B]
        params, grads = {}, {}
        for i in reversed(range(len(spec.layers))):
            ls, cache, bn = spec.layers[i], caches[i], self.norms[i]
            if bn is not None:
                dz, dgamma, dbeta = bn.backward(g, cache["bn"])
                params[f"{i}.gamma"], grads[f"{i}.gamma"] = bn.gamma, dgamma
                params[f"{i}.beta"], grads[f"{i}.beta"] = bn.beta, dbeta
            else:
                dz = g
            dw, da = self._backward_products(i, dz, cache["a"], ls.in_bits, bits)
            params[f"{i}.w"], grads[f"{i}.w"] = self.latent[i], dw
            if i > 0:
                g = da * caches[i - 1]["mask"]  # straight-through estimator of sign (|y| <= 1)
        self.optimizer.step(params, grads)
        changed = 0
        for i in range(len(spec.layers)):
            np.clip(self.latent[i], -1.0, 1.0, out=self.latent[i])
            new = sign_pm1(self.latent[i])
            flips = int(np.count_nonzero(new != self.sign_w[i]))
            if flips:
                self.write_weights(i, new)
                changed += flips
        self.step += 1
        after = self._per_step_snapshot()
        for key in PER_STEP:
            self._train_totals[key] += after[key] - before[key]
        self._train_steps += 1
        acc = float(np.mean(np.argmax(logits, axis=1) == y))
        return {"step": self.step, "loss": loss, "acc": acc, "grad_bits": bits, "weight_flips": changed}

    def _backward_products(self, i: int, dz: np.ndarray, acts: np.ndarray, in_bits: int, bits: int):
        """(dW, dx) of layer i from its float error dz [out, B], both products on the engine.

        Scales as ``bitcycle train`` (``bitcycle.quant.grad``): ``tensor`` quantises dz once for
        both products; ``row`` quantises it per output channel for backward-weight and per sample
        for backward-data, in blocks of ``grad_block`` along each product's reduction axis (the
        batch, resp. the output channels) — every engine job sums codes of one scale, the host
        scales its exact integer result. dW is then quantised too (``quantise_weight_grad``).
        """
        rng, blk = self.rng, self.grad_block
        if self.grad_scale == "tensor":
            q, s = quantize_grad(dz, bits, rng)
            dw = self.weight_grad(acts, q, in_bits, bits) * s
            dx = self.backward_data(i, q, bits) * s if i > 0 else None
        else:
            q_x, s_x = quantize_grad(dz, bits, rng, keep_axis=1, block_axis=0, block=blk) if i > 0 else (None, None)
            q_w, s_w = quantize_grad(dz, bits, rng, keep_axis=0, block_axis=1, block=blk)
            s_w = np.broadcast_to(s_w, dz.shape)
            n = dz.shape[1]
            step = blk or n
            dw = np.zeros((dz.shape[0], acts.shape[0]))
            for n0 in range(0, n, step):  # one backward-weight product per block of samples
                part = self.weight_grad(acts[:, n0:n0 + step], q_w[:, n0:n0 + step], in_bits, bits)
                dw += part * s_w[:, n0:n0 + 1]
            dx = self.backward_data(i, q_x, bits, row_scales=s_x) if i > 0 else None
        if self.quantise_weight_grad:  # dW → Q_b(dW) too, as `bitcycle train` does by default
            row = self.grad_scale == "row"  # per output channel and block of inputs, as bitcycle.quant.grad
            qw, wscale = quantize_grad(dw, bits, rng, keep_axis=0 if row else None, block_axis=1 if row else None,
                                       block=blk if row else 0)
            dw = qw * wscale
        return dw, dx

    def evaluate(self, x, y, batch: int = 256) -> float:
        y = np.asarray(y)
        correct = 0
        for s in range(0, len(y), batch):
            correct += int(np.sum(self.predict(x[s:s + batch]) == y[s:s + batch]))
        return correct / max(len(y), 1)
