"""``Accelerator``: one driver API over three backends (``emu``, ``sim``, ``pynq``).

All the logic is shared; a backend is only a :class:`~bitcycle.driver.transport.Transport`
(register read/write, one stream round trip). The pieces, by responsibility:

* :mod:`bitcycle.driver.jobs` — register programming, packets, waits, recovery, counters;
* :mod:`bitcycle.driver.planning` — how a product is cut into jobs that fit the engine;
* :mod:`bitcycle.driver.training` — the training step on the host;
* here — the backend's lifecycle, the layers' weights and the products.

Weights stay where they are: a layer's sign(W) is loaded into the weight memory only when a job
needs it there and the memory does not hold it already (a weight update that flips no sign leaves
it resident). A layer whose sign(W) fits the activation memory is not loaded at all: its products
run as BACKWARD_WEIGHT jobs with W streamed as the binary operand, y = W·x as (xᵀ·Wᵀ)ᵀ. A layer 0
with 8-bit input takes its weight gradient over the input's bipolar bit-planes stacked into one
binary operand, dW = Σ_p w_p·(q·S_pᵀ + rowsum q)/2, exact in integers.

Jobs larger than the engine's memories (WMEM/AMEM depth, MAX_CHUNKS) or whose worst-case sum
could overflow ACC_BITS are cut into several jobs whose integer results are summed or stacked,
so every product still equals the golden model exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bitcycle.driver import planning
from bitcycle.driver import protocol as P
from bitcycle.driver.hostmath import Adam, BatchNorm, PerTensorNorm, sign_pm1
from bitcycle.driver.jobs import COMPUTE, PER_STEP  # noqa: F401  (re-exported)
from bitcycle.driver.training import TrainingStep
from bitcycle.driver.transport import HWCFG_FIELDS, EmuTransport, Transport, field
from bitcycle.errors import BitCycleError
from bitcycle.golden import bit_planes, check_ints
from bitcycle.hwif import driver_json as DJ
from bitcycle.hwif.regmap import VERSION_MINOR

BACKENDS = ("emu", "sim", "pynq")
GRAD_SCALES = ("row", "tensor", "pow2")  # as bitcycle.quant.grad.GRAD_SCALES (the driver imports no torch)


def _bit_planes(ints: np.ndarray, bits: int) -> np.ndarray:
    """golden ``bit_planes`` (bits ≥ 2) of integers that fit ``bits``: [bits, *shape] uint8, plane p
    = bit p of the two's-complement code; up to 8 bits from the low byte, without int64 copies."""
    if bits > 8:
        return bit_planes(np.asarray(ints, dtype=np.int64), bits)
    ints = np.asarray(ints)
    code = (ints if np.issubdtype(ints.dtype, np.integer) else ints.astype(np.int64)).astype(np.uint8)  # the low byte
    planes = np.empty((bits,) + code.shape, dtype=np.uint8)
    for p in range(bits):
        np.right_shift(code, np.uint8(p), out=planes[p])
        planes[p] &= np.uint8(1)
    return planes


class Accelerator(TrainingStep):
    """Drive a BitCycle engine.

    Parameters
    ----------
    backend: "emu" (numpy golden model), "sim" (Verilated RTL in a child process) or "pynq" (board).
    bitfile: overlay .bit (pynq) — a path, or a name looked up next to driver.json and in the package.
    driver_json: path / dict / DriverSpec; ``None`` defers to :meth:`load`.
    timeout: seconds for every wait (stream transfer, DONE); a hang raises BitCycleError.
    seed: seeds the latent-weight init and the stochastic rounding (emu and sim then agree bit for bit).
    stream_weights: run a layer whose sign(W) fits the activation memory with W streamed (no weight
        load); False keeps every layer's products in the FORWARD/BACKWARD_DATA modes.
    """

    def __init__(self, backend: str = "emu", bitfile: str | None = None, driver_json=None,
                 timeout: float = 10.0, seed: int = 0, lr: float = 1e-2, quantise_weight_grad: bool = True,
                 grad_scale: str = "row", grad_block: int = 16, transport: Transport | None = None,
                 stream_weights: bool = True, **backend_options):
        if backend not in BACKENDS:
            raise BitCycleError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        self.backend = backend
        self.bitfile = bitfile
        self.timeout = float(timeout)
        self.seed = int(seed)
        self.lr = float(lr)
        self.quantise_weight_grad = bool(quantise_weight_grad)
        if grad_scale not in GRAD_SCALES:
            raise BitCycleError(f"grad_scale {grad_scale!r} is unknown; choose one of {', '.join(GRAD_SCALES)}")
        self.grad_scale = grad_scale
        if isinstance(grad_block, bool) or not isinstance(grad_block, int) or grad_block < 0:
            raise BitCycleError(f"grad_block {grad_block!r} must be an integer >= 0 (0 = one scale per whole row)")
        self.grad_block = grad_block if grad_scale != "tensor" else 0
        self.stream_weights = bool(stream_weights)
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
        # (layer, r0, r1, c0, c1) whose sign(W) the engine's weight memory holds; None: nothing known
        self.resident: tuple[int, int, int, int, int] | None = None
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

    def _check_identity(self) -> None:
        """ID, VERSION.MAJOR and the build parameters in HWCFG0..2 must match driver.json's engine."""
        eng = self._need_spec().engine
        got_id, got_ver = self.reg_read("ID"), field("VERSION", "MAJOR", self.reg_read("VERSION"))
        if got_id != eng.id or got_ver != eng.version:
            raise BitCycleError(
                f"overlay is engine ID {got_id:#010x} v{got_ver} but driver.json expects {eng.id:#010x} "
                f"v{eng.version}: load the bitstream this driver.json was compiled with")
        # this driver writes OUT_CFG.RES_W (packed results, engine v1.1): an older engine ignores it
        # and would send int32 lanes the driver then misreads
        got_minor = field("VERSION", "MINOR", self.reg_read("VERSION"))
        if got_minor < VERSION_MINOR:
            raise BitCycleError(f"overlay is engine v{got_ver}.{got_minor}, this driver needs v{got_ver}.{VERSION_MINOR} "
                                "or later (packed result words): rebuild the bitstream with `make bitstream`")
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

    # -- public operations -------------------------------------------------------------------
    def _layer_index(self, layer) -> int:
        spec = self._need_spec()
        if isinstance(layer, (int, np.integer)):
            spec.layer(int(layer))
            return int(layer)
        return spec.layers.index(spec.layer(layer))

    def _weight_blocks(self, m: int, k: int, col_bits: int, row_bits: int) -> list[tuple[int, int, int, int]]:
        # float block scales (row) must not mix in a BACKWARD_DATA job; pow2 ones are folded
        row_block = self.grad_block if self.grad_scale == "row" else 0
        return planning.weight_blocks(self._need_spec().engine, m, k, col_bits, row_bits, row_block)

    def _make_resident(self, i: int, block: tuple[int, int, int, int]) -> None:
        if self.resident != (i, *block):
            r0, r1, c0, c1 = block
            w = np.ascontiguousarray(self.sign_w[i][r0:r1, c0:c1])
            self.resident = None  # until the load has succeeded
            self._job(P.Mode.LOAD_WEIGHTS, 1, r1 - r0, c1 - c0, 1, self._pack(P.Mode.LOAD_WEIGHTS, 1, binary=w))
            self.resident = (i, *block)

    def _streams(self, i: int, rows: int, cols: int, bits: int) -> bool:
        """Run layer i's product as BACKWARD_WEIGHT jobs with its W (as [rows, cols]) streamed:
        when that is one job and the weight memory does not hold the layer already."""
        if not self.stream_weights or (self.resident is not None and self.resident[0] == i):
            return False
        return planning.streamed_jobs(self._need_spec().engine, rows, cols, bits) == 1

    def _backward_weight(self, sx: np.ndarray, dy: np.ndarray, bits: int) -> np.ndarray:
        """dW[M, K] = dy[M, N] · sx[K, N]ᵀ, split so sign(x) fits the activation memory (exact sums).
        The operands may be views (the packers read any strides); the result is C-contiguous, in the
        jobs' result width when one job computes it."""
        (k, n), m = sx.shape, dy.shape[0]
        kb, nb = planning.streamed_tiling(self._need_spec().engine, k, n, bits)
        if k <= kb and n <= nb:  # one job
            return self._compute(P.Mode.BACKWARD_WEIGHT, bits, m, k, n, binary=sx, ints=dy)
        dw = np.zeros((m, k), dtype=np.int64)
        for k0 in range(0, k, kb):
            for n0 in range(0, n, nb):
                part_x = sx[k0:k0 + kb, n0:n0 + nb]
                dw[:, k0:k0 + kb] += self._compute(P.Mode.BACKWARD_WEIGHT, bits, m, part_x.shape[0], part_x.shape[1],
                                                   binary=part_x, ints=dy[:, n0:n0 + nb])
        return dw

    def write_weights(self, layer, sign_w) -> None:
        """Set ±1 weights [out, in] of ``layer`` (name or index). They reach the engine when a job
        next needs them in its weight memory (the memory holds one layer, or one block of a layer
        larger than it); unchanged weights of the resident layer are not written again."""
        i = self._layer_index(layer)
        spec = self._need_spec().layers[i]
        w = np.asarray(sign_w)
        if w.shape != (spec.out_features, spec.in_features):
            raise BitCycleError(f"write_weights({spec.name!r}): got shape {list(w.shape)}, the layer is "
                                f"[out, in] = [{spec.out_features}, {spec.in_features}]")
        w, _ = self._check_operands(w, np.zeros((w.shape[1], 1), np.int64), 2)
        self._set_weights(i, w.copy())

    def _set_weights(self, i: int, w: np.ndarray) -> None:
        """sign(W) of layer i ← w (±1 int8 [out, in], checked or built by the driver; kept, not copied)."""
        if self.resident is not None and self.resident[0] == i and not np.array_equal(w, self.sign_w[i]):
            self.resident = None  # the engine holds the old signs: load again when next needed
        self.sign_w[i] = w

    def set_bits(self, bits: int) -> None:
        """Gradient bit-width of the next backward products (within driver.json's grad_bits and the engine's)."""
        bits = self._check_bits(bits, "grad bits")
        gb = self._need_spec().grad_bits
        if not gb["min"] <= bits <= gb["max"]:
            raise BitCycleError(f"grad bits {bits} outside driver.json's grad_bits {gb['min']}..{gb['max']}")
        self.grad_bits = bits

    def set_schedule(self, schedule) -> None:
        """Any object with ``.bits(step) -> int`` (e.g. bitcycle.schedule.CyclicSchedule)."""
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
        return self._backward_weight(binary, np.ascontiguousarray(ints.T), bits).T.astype(np.int64, order="C")

    def _layer_operand(self, i: int, ints, rows: int, what: str, bits: int) -> np.ndarray:
        ints = np.asarray(ints)
        if ints.ndim != 2 or ints.shape[0] != rows:
            raise BitCycleError(f"{what} {self._need_spec().layers[i].name}: input must be [{rows}, N], got {list(ints.shape)}")
        return self._check_operands(np.ones((1, 1), np.int8), ints, bits)[1]

    def forward_layer(self, layer, ints, bits: int | None = None) -> np.ndarray:
        """y = sign(W) · x for ``layer``: x [in, N] → int64 [out, N] (FORWARD, or W streamed)."""
        i = self._layer_index(layer)
        ls = self._need_spec().layers[i]
        bits = self._check_bits(ls.in_bits if bits is None else bits)
        return self._forward_layer(i, self._layer_operand(i, ints, ls.in_features, "forward", bits), bits).astype(np.int64)

    def _forward_layer(self, i: int, x: np.ndarray, bits: int) -> np.ndarray:
        """forward_layer for an operand the driver built (or checked): integers [in, N] that fit
        ``bits``. The exact result C-contiguous, in the jobs' result width (int8/16/32/64)."""
        ls = self._need_spec().layers[i]
        if self._streams(i, ls.out_features, ls.in_features, bits):
            return np.ascontiguousarray(self._backward_weight(self.sign_w[i], x.T, bits).T)
        grad_max = self._need_spec().grad_bits["max"]
        blocks = self._weight_blocks(ls.out_features, ls.in_features, max(bits, ls.in_bits), grad_max)
        if len(blocks) == 1:  # the whole layer in one job: its result as it is
            return self._forward_block(i, blocks[0], x, bits)
        y = np.zeros((ls.out_features, x.shape[1]), dtype=np.int64)
        for block in blocks:
            y[block[0]:block[1]] += self._forward_block(i, block, x, bits)
        return y

    def _forward_block(self, i: int, block: tuple[int, int, int, int], x: np.ndarray, bits: int) -> np.ndarray:
        r0, r1, c0, c1 = block
        self._make_resident(i, block)
        return self._compute(P.Mode.FORWARD, bits, r1 - r0, c1 - c0, x.shape[1], ints=x[c0:c1])

    def backward_data(self, layer, ints, bits: int | None = None, row_scales=None) -> np.ndarray:
        """dx = sign(W)ᵀ · dy for ``layer``: dy [out, N] → int64 [in, N] (BACKWARD_DATA, W read
        transposed, or W streamed).

        ``row_scales`` [out, N] (dy's block scales): → float64 dx = Wᵀ·(s·dy). Scales that are
        integer multiples of their sample's smallest (pow2) are folded into dy: one product.
        Others must be constant over each run of ``grad_block`` rows: one product per run."""
        i = self._layer_index(layer)
        ls = self._need_spec().layers[i]
        bits = self._check_bits(self.grad_bits if bits is None else bits)
        dy = self._layer_operand(i, ints, ls.out_features, "backward_data", bits)
        if row_scales is not None:
            scales = np.broadcast_to(np.asarray(row_scales, dtype=np.float64), dy.shape)
            folded = planning.fold_scales(dy, scales, 0, self._need_spec().engine.max_bits)
            if folded is not None:
                codes, codes_bits, col_scale = folded
                return self._backward_data(i, codes, codes_bits) * col_scale
            return self._backward_data(i, dy, bits, scales)
        return self._backward_data(i, dy, bits).astype(np.int64)

    def _backward_data(self, i: int, dy: np.ndarray, bits: int, scales: np.ndarray | None = None) -> np.ndarray:
        ls = self._need_spec().layers[i]
        if scales is None and self._streams(i, ls.in_features, ls.out_features, bits):
            return np.ascontiguousarray(self._backward_weight(self.sign_w[i].T, dy.T, bits).T)
        grad_max = max(bits, self._need_spec().grad_bits["max"])
        # reverse block order: the block the forward pass left resident is used first
        blocks = self._weight_blocks(ls.out_features, ls.in_features, ls.in_bits, grad_max)[::-1]
        if len(blocks) == 1 and scales is None:  # one integer job: its result as it is
            return self._backward_data_block(i, blocks[0], dy, bits)
        # (scaled parts are summed onto +0.0, as always)
        dx = np.zeros((ls.in_features, dy.shape[1]), dtype=np.int64 if scales is None else np.float64)
        for r0, r1, c0, c1 in blocks:
            part = self._backward_data_block(i, (r0, r1, c0, c1), dy, bits)
            dx[c0:c1] += part if scales is None else part * scales[r0]
        return dx

    def _backward_data_block(self, i: int, block: tuple[int, int, int, int], dy: np.ndarray, bits: int) -> np.ndarray:
        r0, r1, c0, c1 = block
        self._make_resident(i, block)
        return self._compute(P.Mode.BACKWARD_DATA, bits, r1 - r0, c1 - c0, dy.shape[1], ints=dy[r0:r1])

    def weight_grad(self, acts, q, in_bits: int, bits: int) -> np.ndarray:
        """Exact integer dW = q · actsᵀ: q [out, B] (b-bit codes), acts [in, B] → [out, in] (BACKWARD_WEIGHT).

        Binary acts (in_bits = 1): one product. Integer acts (layer 0): the bipolar bit-planes S_p
        of acts stacked into one binary operand [in_bits·in, B] (as few jobs as the activation
        memory allows), dW = Σ_p w_p·(q·S_pᵀ + rowsum(q))/2 (w_p = 2^p, −2^(b−1) for the MSB), exact.
        """
        bits = self._check_bits(bits)
        try:
            q = check_ints(q, bits, "q")
        except ValueError as err:
            raise BitCycleError(str(err)) from None
        return self._weight_grad(acts, q, self._check_bits(in_bits, "in_bits"), bits).astype(np.int64)

    def _weight_grad(self, acts, q: np.ndarray, in_bits: int, bits: int) -> np.ndarray:
        """weight_grad for codes q the driver built (integers [out, B] that fit ``bits``); the exact
        dW C-contiguous, in the jobs' result width (int8/16/32/64)."""
        if in_bits == 1:
            return self._backward_weight(np.asarray(acts), q, bits)
        acts = np.asarray(acts)
        n_in = acts.shape[0]
        planes = _bit_planes(acts, in_bits)  # the bipolar planes S_p as their tile bits (1 ↦ +1), [in_bits, in, B]
        # as many planes per product as the transport's packet limit lets the output dW [out, planes·in] hold
        limit = getattr(self.transport, "max_packet_bytes", None)
        row_bytes = q.shape[0] * n_in * 4
        group = in_bits if limit is None else max(1, min(in_bits, int(limit) // max(row_bytes, 1)))
        parts = [self._backward_weight(planes[p0:p0 + group].reshape(-1, acts.shape[1]), q, bits).reshape(q.shape[0], -1, n_in)
                 for p0 in range(0, in_bits, group)]
        qs = [parts[p // group][:, p % group] for p in range(in_bits)]  # q·S_pᵀ [out, in]
        # Σ_p w_p·(q·S_pᵀ + rowsum q)/2 = (Σ_p w_p·q·S_pᵀ − rowsum q)/2 (Σ_p w_p = −1), in exact
        # integers: the sum by Horner's rule from the MSB (w = −2^(b−1)), then the (even) numerator halved
        acc = np.negative(qs[-1], dtype=np.int64)
        for p in range(in_bits - 2, -1, -1):
            acc <<= 1
            acc += qs[p]
        acc -= q.astype(np.int64).sum(axis=1)[:, None]
        acc >>= 1
        return acc
