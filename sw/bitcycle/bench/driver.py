"""``bitcycle bench driver`` (``make bench-driver``): what one training step costs through the driver.

For one small binary MLP on digits, measured in this run:

* ``emu`` and ``sim``: wall and CPU time per training step of the driver on this host, the
  engine cycles per step by mode (``sim``: the RTL's CYCLES register; ``emu``: the cycle model),
  the DMA bytes per step and the register accesses;
* the projected on-board time per step at ``--clock-mhz``: engine cycles / f plus the DMA bytes
  at a stated stream bandwidth (one ``stream_bytes`` word per clock — the AXI-Stream rate; an
  upper bound, since the engine overlaps input streaming with compute); ARM-side Python time is
  not projected;
* the same step in PyTorch (``bitcycle.nets`` model of the same shape, gradient quantiser at the
  same bits, Adam) on this host's CPU, one thread.

Writes build/bench/driver.json and build/bench/driver.md. torch is imported only here (the
driver itself never imports it).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from bitcycle.bench.provenance import provenance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hidden", default="64,64", help="hidden widths of the MLP (digits: 64 inputs, 10 classes)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bits", default="2,4,8", help="gradient bit-widths to measure")
    parser.add_argument("--emu-steps", type=int, default=8, help="timed steps per bit-width on emu")
    parser.add_argument("--sim-steps", type=int, default=2, help="timed steps per bit-width on sim (0: skip sim)")
    parser.add_argument("--torch-steps", type=int, default=20, help="timed steps per bit-width in PyTorch (0: skip)")
    parser.add_argument("--clock-mhz", type=float, default=100.0)
    parser.add_argument("--out", default="build/bench")


def _steps(acc, x, y, bits: int, steps: int, batch: int) -> dict:
    acc.set_bits(bits)
    acc.train_step(x[:batch], y[:batch])  # warm-up: the first step loads every layer's weights
    acc.counters(reset=True)
    child = getattr(acc.transport, "child_cpu_seconds", lambda: 0.0)  # the simulator process (sim)
    t0, c0, s0 = time.perf_counter(), time.process_time(), child()
    for s in range(steps):
        lo = (s * batch) % (len(y) - batch)
        acc.train_step(x[lo:lo + batch], y[lo:lo + batch])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0 + child() - s0
    c = acc.counters()
    return {
        "bits": bits, "steps": steps,
        "wall_ms_per_step": 1e3 * wall / steps, "cpu_ms_per_step": 1e3 * cpu / steps,  # sim: + simulator CPU
        "cycles_per_step": c["cycles_total"] / steps,
        "cycles_per_step_by_mode": {k: v / steps for k, v in c["cycles"].items() if v},
        "jobs_per_step": {k: v / steps for k, v in c["jobs"].items() if v},
        "dma_bytes_per_step": (c["bytes_sent"] + c["bytes_received"]) / steps,
        "reg_accesses_per_step": (c["reg_writes"] + c["reg_reads"]) / steps,
    }


def _torch_step_ms(hidden, batch, bits, steps, x, y) -> dict:
    import torch

    from bitcycle.nets import clip_latent_weights
    from bitcycle.nets.mlp import BinaryMLP
    from bitcycle.quant.grad import set_grad_bits

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = BinaryMLP(hidden=tuple(hidden), in_features=x.shape[1], num_classes=10)
    set_grad_bits(model, bits)
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
    from bitcycle.driver import Accelerator, spec_for_model
    from bitcycle.driver.data import load as load_data
    from bitcycle.errors import BitCycleError

    hidden = [int(h) for h in args.hidden.split(",")]
    bits_list = [int(b) for b in args.bits.split(",")]
    spec = spec_for_model("mlp", "digits", hidden=hidden, grad_bits=(min(bits_list), max(bits_list)))
    x, y, _, _, _ = load_data("digits")
    f = args.clock_mhz * 1e6
    bandwidth = spec.engine.stream_bytes * f  # bytes/s: one stream word per clock
    rows = []
    backends = [("emu", args.emu_steps)] + ([("sim", args.sim_steps)] if args.sim_steps > 0 else [])
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    todo = [(b, s, bits) for b, s in backends for bits in bits_list]
    bar = tqdm(total=len(todo), desc="bench driver", unit="case") if tqdm else None
    for backend, steps in backends:
        t0 = time.perf_counter()
        try:
            acc = Accelerator(backend, driver_json=spec, seed=0, timeout=120)
        except BitCycleError as err:
            print(f"bench driver: skipping {backend}: {err}")
            continue
        start_s = time.perf_counter() - t0
        with acc:
            for bits in bits_list:
                r = _steps(acc, x, y, bits, steps, args.batch_size)
                r.update(backend=backend, cycles_source="RTL CYCLES register" if backend == "sim" else "cycle model",
                         backend_start_s=start_s)
                r["projected_board_ms_per_step"] = 1e3 * (r["cycles_per_step"] / f + r["dma_bytes_per_step"] / bandwidth)
                r["projected_engine_ms_per_step"] = 1e3 * r["cycles_per_step"] / f
                rows.append(r)
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    torch_rows = []
    if args.torch_steps > 0:
        for bits in bits_list:
            torch_rows.append(_torch_step_ms(hidden, args.batch_size, bits, args.torch_steps, x, y))
    result = {
        "bench": "driver", "model": f"mlp 64-{'-'.join(map(str, hidden))}-10 (digits)", "batch_size": args.batch_size,
        "engine": spec.engine.__dict__, "clock_mhz": args.clock_mhz,
        "stream_bandwidth_MBps": bandwidth / 1e6,
        "bandwidth_note": "DMA bytes at one stream word per clock (AXI-Stream rate); upper bound: the engine overlaps input with compute",
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
    torch_ms = {r["bits"]: r for r in result["torch_cpu"]}
    lines = [
        f"Training step of {result['model']}, batch {result['batch_size']}; engine PE={result['engine']['pe']} "
        f"SIMD={result['engine']['simd']}, {8 * result['engine']['stream_bytes']}-bit stream; projection at "
        f"{result['clock_mhz']:.0f} MHz with DMA at {result['stream_bandwidth_MBps']:.0f} MB/s.",
        "",
        "| backend | grad bits | host ms/step (wall / CPU) | engine cycles/step | cycles from | DMA kB/step "
        "| projected board ms/step (engine + DMA) | PyTorch CPU ms/step (wall / CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["driver"]:
        t = torch_ms.get(r["bits"])
        tcol = f"{t['wall_ms_per_step']:.1f} / {t['cpu_ms_per_step']:.1f}" if t else "—"
        lines.append(
            f"| {r['backend']} | {r['bits']} | {r['wall_ms_per_step']:.1f} / {r['cpu_ms_per_step']:.1f} "
            f"| {r['cycles_per_step']:,.0f} | {r['cycles_source']} | {r['dma_bytes_per_step'] / 1e3:.1f} "
            f"| {r['projected_board_ms_per_step']:.3f} ({r['projected_engine_ms_per_step']:.3f} + "
            f"{r['projected_board_ms_per_step'] - r['projected_engine_ms_per_step']:.3f}) | {tcol} |")
    return "\n".join(lines) + "\n"
