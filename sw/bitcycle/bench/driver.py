"""``bitcycle bench driver`` (``make bench-driver``): what one training step costs through the driver.

For a binary MLP on digits (default SFC 64-256×3-10, batch 64, pow2 gradient scales), measured in
this run on ``emu`` (and ``sim`` with ``--sim-steps``):

* the operations the driver counted per training step: engine jobs, DMA transfers, register
  accesses, cache syncs, bytes each way, engine cycles (``sim``: the RTL's CYCLES register;
  ``emu``: the cycle model);
* the host CPU time per step: this process's CPU time (all its threads summed, numpy's BLAS held to
  one thread) minus the CPU time spent inside the transport (on ``emu`` that is the engine model's
  arithmetic, which the board's engine does) — what the board's ARM core would run;
* a board projection that prices each counted operation at a stated cost (``BOARD``) and scales
  the host time by a stated factor; the table says every assumption and the engine's share;
* the same step in PyTorch (``bitcycle.nets`` model of the same shape) on this host, one thread.

Writes build/bench/driver.json and build/bench/driver.md. torch is imported only here.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from bitcycle.bench.provenance import provenance

# PYNQ-Z2 (Zynq-7020, Cortex-A9 650 MHz) per-operation costs, mid values of the stated ranges
BOARD = {
    "register_access_us": 10.0,   # MMIO through pynq's Python MMIO object: 5–20 µs
    "cache_sync_ms": 0.2,         # flush/invalidate of a DMA buffer: 0.05–0.5 ms
    "dma_transfer_us": 50.0,      # pynq's transfer(): ~4 DMA register writes + status polls in Python
    "host_factor": 20.0,          # the A9 running numpy vs this core: 15–30× slower
    "clock_mhz": 100.0,           # engine clock
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hidden", default="256,256,256", help="hidden widths of the MLP (digits: 64 inputs, 10 classes)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bits", default="2,4,8", help="gradient bit-widths to measure")
    parser.add_argument("--grad-scale", default="pow2", choices=("row", "tensor", "pow2"))
    parser.add_argument("--emu-steps", type=int, default=8, help="timed steps per bit-width on emu")
    parser.add_argument("--sim-steps", type=int, default=0, help="timed steps per bit-width on sim (0: skip sim)")
    parser.add_argument("--torch-steps", type=int, default=20, help="timed steps per bit-width in PyTorch (0: skip)")
    parser.add_argument("--out", default="build/bench")


def _steps(acc, x, y, bits: int, steps: int, batch: int) -> dict:
    acc.set_bits(bits)
    acc.train_step(x[:batch], y[:batch])  # warm-up: the first step loads the weights
    acc.counters(reset=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(steps):
        lo = (s * batch) % (len(y) - batch)
        acc.train_step(x[lo:lo + batch], y[lo:lo + batch])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    c, ps = acc.counters(), acc.per_step()
    host_cpu = cpu - c["transport_cpu_seconds"]
    return {
        "bits": bits, "steps": steps, **{k: v for k, v in ps.items() if k != "steps"},
        "wall_ms_per_step": 1e3 * wall / steps, "host_cpu_ms_per_step": 1e3 * host_cpu / steps,
        "cycles_per_step": c["cycles_total"] / steps,
        "jobs_per_step": {k: v / steps for k, v in c["jobs"].items() if v},
    }


def project(r: dict, engine_stream_bytes: int) -> dict:
    """Board milliseconds per step: every counted operation at BOARD's cost, host time × host_factor."""
    f = BOARD["clock_mhz"] * 1e6
    parts = {
        "host": r["host_cpu_ms_per_step"] * BOARD["host_factor"],
        "engine": 1e3 * r["cycles_per_step"] / f,
        "stream": 1e3 * (r["bytes_sent"] + r["bytes_received"]) / (engine_stream_bytes * f),
        "registers": 1e-3 * r["register_accesses"] * BOARD["register_access_us"],
        "cache_syncs": r["cache_syncs"] * BOARD["cache_sync_ms"],
        "dma_setup": 1e-3 * r["dma_transfers"] * BOARD["dma_transfer_us"],
    }
    total = sum(parts.values())
    return {"board_ms": parts, "board_total_ms": total, "host_share": parts["host"] / total,
            "engine_share": parts["engine"] / total}


def _torch_step_ms(hidden, batch, bits, steps, x, y, grad_scale) -> dict:
    import torch

    from bitcycle.nets import clip_latent_weights
    from bitcycle.nets.mlp import BinaryMLP
    from bitcycle.quant.grad import set_grad_bits, set_grad_scale

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = BinaryMLP(hidden=tuple(hidden), in_features=x.shape[1], num_classes=10)
    set_grad_bits(model, bits)
    set_grad_scale(model, grad_scale)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt = torch.from_numpy(x.astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))

    def step(s):
        lo = (s * batch) % (len(yt) - batch)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt[lo:lo + batch]), yt[lo:lo + batch])
        loss.backward()
        opt.step()
        clip_latent_weights(model)

    step(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(steps):
        step(s + 1)
    return {"bits": bits, "steps": steps, "wall_ms_per_step": 1e3 * (time.perf_counter() - t0) / steps,
            "cpu_ms_per_step": 1e3 * (time.process_time() - c0) / steps}


def run(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_limits

    from bitcycle.driver import Accelerator, spec_for_model
    from bitcycle.driver.data import load as load_data
    from bitcycle.errors import BitCycleError

    hidden = [int(h) for h in args.hidden.split(",")]
    bits_list = [int(b) for b in args.bits.split(",")]
    spec = spec_for_model("mlp", "digits", hidden=hidden, grad_bits=(min(bits_list), max(bits_list)))
    x, y, _, _, _ = load_data("digits")
    rows = []
    backends = [("emu", args.emu_steps)] + ([("sim", args.sim_steps)] if args.sim_steps > 0 else [])
    with threadpool_limits(limits=1):  # the host side on one core
        for backend, steps in backends:
            try:
                acc = Accelerator(backend, driver_json=spec, seed=0, timeout=120, grad_scale=args.grad_scale)
            except BitCycleError as err:
                print(f"bench driver: skipping {backend}: {err}")
                continue
            with acc:
                for bits in bits_list:
                    r = _steps(acc, x, y, bits, steps, args.batch_size)
                    r.update(backend=backend, cycles_source="RTL CYCLES register" if backend == "sim" else "cycle model")
                    r.update(project(r, spec.engine.stream_bytes))
                    rows.append(r)
    torch_rows = [_torch_step_ms(hidden, args.batch_size, bits, args.torch_steps, x, y, args.grad_scale)
                  for bits in bits_list] if args.torch_steps > 0 else []
    result = {
        "bench": "driver", "model": f"mlp 64-{'-'.join(map(str, hidden))}-10 (digits)", "batch_size": args.batch_size,
        "grad_scale": args.grad_scale, "engine": spec.engine.__dict__, "board": BOARD,
        "host": platform.processor() or platform.machine(), "python": platform.python_version(),
        "driver": rows, "torch_cpu": torch_rows, "provenance": provenance(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "driver.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (out / "driver.md").write_text(table)
    print(table)
    print(f"wrote {out / 'driver.json'}")
    return 0


def markdown(result: dict) -> str:
    b, e = result["board"], result["engine"]
    torch_ms = {r["bits"]: r for r in result["torch_cpu"]}
    lines = [
        f"Training step of {result['model']}, batch {result['batch_size']}, {result['grad_scale']} gradient scales; "
        f"engine PE={e['pe']} SIMD={e['simd']}, {8 * e['stream_bytes']}-bit stream. Counts and host CPU time "
        f"measured in this run; board projection (PYNQ-Z2 assumptions): {b['register_access_us']:g} µs per register "
        f"access, {b['cache_sync_ms']:g} ms per cache sync, {b['dma_transfer_us']:g} µs per DMA transfer set-up, "
        f"stream at one word per clock, engine at {b['clock_mhz']:g} MHz, host CPU time × {b['host_factor']:g} "
        "(Cortex-A9 vs this core).",
        "",
        "| backend | grad bits | jobs | DMA transfers | register accesses | cache syncs | MB sent / received "
        "| engine cycles | host CPU ms (this core) | board ms: host + engine + stream + regs + syncs + DMA = total "
        "| host share | engine share | PyTorch CPU ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["driver"]:
        p = r["board_ms"]
        t = torch_ms.get(r["bits"])
        torch_cell = f"{t['cpu_ms_per_step']:.1f}" if t else "—"
        lines.append(
            f"| {r['backend']} | {r['bits']} | {r['engine_jobs']:.0f} | {r['dma_transfers']:.0f} "
            f"| {r['register_accesses']:.0f} | {r['cache_syncs']:.0f} "
            f"| {r['bytes_sent'] / 1e6:.2f} / {r['bytes_received'] / 1e6:.2f} | {r['cycles_per_step']:,.0f} "
            f"| {r['host_cpu_ms_per_step']:.1f} | {p['host']:.1f} + {p['engine']:.2f} + {p['stream']:.2f} + "
            f"{p['registers']:.2f} + {p['cache_syncs']:.1f} + {p['dma_setup']:.2f} = {r['board_total_ms']:.1f} "
            f"| {100 * r['host_share']:.0f} % | {100 * r['engine_share']:.0f} % | {torch_cell} |")
    return "\n".join(lines) + "\n"
