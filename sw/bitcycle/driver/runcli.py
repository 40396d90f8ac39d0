"""``bitcycle run``: train a binary MLP or CNN through the driver (engine products, host BatchNorm/loss/Adam).

Writes DIR/metrics.json (+ metrics.md, history.csv, curves.png, params.npz, driver.json), in the
spirit of ``bitcycle train``'s outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from bitcycle.cliutil import add_model_set, add_quiet
from bitcycle.errors import BitCycleError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("emu", "sim", "pynq"), default="emu",
                        help="emu = golden model, sim = Verilated RTL, pynq = the board (default: emu)")
    parser.add_argument("--model", default="sfc", help="zoo MLP (tfc, sfc, lfc, mlp) or cnv when no --driver-json")
    add_model_set(parser)
    parser.add_argument("--hidden", default=None, help="override the hidden widths, e.g. 64,64")
    parser.add_argument("--driver-json", default=None, help="a compiled model's driver.json (else built from --model)")
    parser.add_argument("--bitfile", default=None, help="overlay .bit for --backend pynq")
    parser.add_argument("--dataset", default="digits", choices=("digits", "fashion-mnist"))
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: the Debian package's)")
    parser.add_argument("--grad-bits", default="cosine:2-8x4", help="fixed:B | cosine:L-HxC | triangle:L-HxC")
    parser.add_argument("--steps", type=int, default=300, help="training steps (batches)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate on latent weights")
    parser.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine",
                        help="cosine: anneal the learning rate to 0 over the run, as `bitcycle train` does")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-weight-grad-quant", action="store_true",
                        help="quantise only dy (the engine operand), keep dW = Q(dy)·sign(x) unrounded")
    parser.add_argument("--grad-scale", choices=("row", "tensor", "pow2"), default="row",
                        help="dy scales: per sample for dx and per output channel for dW (row), the same as powers of two (pow2: one engine job per product), or one per tensor")
    parser.add_argument("--grad-block", type=int, default=16, metavar="N",
                        help="row scales: one per N values along each product's reduction axis (0 = whole row)")
    parser.add_argument("--eval-every", type=int, default=0, help="test accuracy every N steps (0: at the end)")
    parser.add_argument("--train-limit", type=int, default=None, help="use only the first N training samples")
    parser.add_argument("--test-limit", type=int, default=None, help="score only the first N test samples")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for each engine wait")
    parser.add_argument("--out", default="build/run", help="output directory")
    add_quiet(parser)


def make_schedule(grad_bits: str, steps: int):
    from bitcycle.schedule import parse_grad_bits

    spec = parse_grad_bits(grad_bits)
    if spec.is_fp32:
        raise BitCycleError("--grad-bits fp32 has no meaning on the engine (gradients are integers); use fixed:16 or a schedule")
    return spec, spec.schedule(steps)


def train(acc, train_x, train_y, test_x, test_y, steps: int, batch_size: int, seed: int,
          eval_every: int = 0, progress: bool = True, lr_schedule: str = "cosine") -> dict:
    """The training loop shared by ``bitcycle run``, the notebooks and the benchmark."""
    if batch_size < 2:
        raise BitCycleError("--batch-size must be >= 2 (BatchNorm needs batch statistics)")
    if steps < 1:
        raise BitCycleError("--steps must be >= 1")
    rng = np.random.default_rng(seed)
    history, evals = [], []
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=f"run[{acc.backend}]", unit="step")
        except ImportError:
            bar = None
    order, pos = rng.permutation(len(train_y)), 0
    base_lr = acc.optimizer.lr
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(steps):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(train_y)), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        if lr_schedule == "cosine":
            acc.optimizer.lr = 0.5 * base_lr * (1.0 + math.cos(math.pi * step / steps))
        m = acc.train_step(train_x[idx], train_y[idx])
        history.append(m)
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            evals.append({"step": step + 1, "test_acc": acc.evaluate(test_x, test_y)})
        if bar is not None:
            bar.set_postfix(loss=f"{m['loss']:.3f}", bits=m["grad_bits"])
            bar.update(1)
    if bar is not None:
        bar.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    test_acc = acc.evaluate(test_x, test_y)
    evals.append({"step": steps, "test_acc": test_acc})
    return {"history": history, "evals": evals, "test_acc": test_acc, "train_wall_s": wall, "train_cpu_s": cpu}


def run(args: argparse.Namespace) -> int:
    from bitcycle.driver import Accelerator
    from bitcycle.hwif import driver_json as DJ
    from bitcycle.driver.data import load as load_data

    if args.steps < 1:
        raise BitCycleError("--steps must be >= 1")
    gb_spec, schedule = make_schedule(args.grad_bits, args.steps)
    if args.driver_json:
        spec = DJ.load(args.driver_json)
    else:
        hidden = [int(h) for h in args.hidden.split(",")] if args.hidden else None
        spec = DJ.spec_for_model(args.model, args.dataset, hidden=hidden, grad_bits=(gb_spec.b_min, gb_spec.b_max),
                                 options=dict(args.model_set))
    lo, hi = spec.grad_bits["min"], spec.grad_bits["max"]
    if gb_spec.b_min < lo or gb_spec.b_max > hi:
        raise BitCycleError(f"--grad-bits {args.grad_bits} asks for {gb_spec.b_min}..{gb_spec.b_max} bits but "
                            f"driver.json allows {lo}..{hi}")
    train_x, train_y, test_x, test_y, source = load_data(args.dataset, args.data_dir)
    if train_x.shape[1] != spec.input.features:
        raise BitCycleError(f"--dataset {args.dataset} has {train_x.shape[1]} features per sample but the model takes "
                            f"{spec.input.features}; pick the data set the model was built for")
    # data arrive in [0, 1]; a compiled driver.json may take raw pixel codes (input.full_scale)
    train_x, test_x = train_x * spec.input.full_scale, test_x * spec.input.full_scale
    if args.train_limit:
        train_x, train_y = train_x[:args.train_limit], train_y[:args.train_limit]
    if args.test_limit:
        test_x, test_y = test_x[:args.test_limit], test_y[:args.test_limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with Accelerator(args.backend, bitfile=args.bitfile, driver_json=spec, timeout=args.timeout,
                     seed=args.seed, lr=args.lr, quantise_weight_grad=not args.no_weight_grad_quant,
                     grad_scale=args.grad_scale, grad_block=args.grad_block) as acc:
        acc.set_schedule(schedule)
        result = train(acc, train_x, train_y, test_x, test_y, args.steps, args.batch_size, args.seed,
                       args.eval_every, progress=not args.quiet, lr_schedule=args.lr_schedule)
        counters = acc.counters()
        per_step = acc.per_step()
        acc.save_params(out / "params.npz")
        weights_digest = weights_fingerprint(acc)
    spec.params = "params.npz"
    spec.save(out / "driver.json")
    bits = [h["grad_bits"] for h in result["history"]]
    metrics = {
        "command": "run", "backend": args.backend, "model": spec.model, "dataset": args.dataset,
        "data_source": source, "layers": [f"{'conv ' if l.conv else ''}{l.in_features}x{l.out_features}" for l in spec.layers],
        "grad_bits": str(gb_spec), "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "lr_schedule": args.lr_schedule, "quantise_weight_grad": not args.no_weight_grad_quant,
        "grad_scale": args.grad_scale, "grad_block": args.grad_block if args.grad_scale != "tensor" else None,
        # key names as `bitcycle train`'s metrics.json where the quantity is the same
        "seed": args.seed, "test_accuracy": result["test_acc"], "final_loss": result["history"][-1]["loss"],
        "mean_grad_bits": float(np.mean(bits)), "wall_time_s": result["train_wall_s"],
        "cpu_time_s": result["train_cpu_s"], "seconds_per_step": result["train_wall_s"] / args.steps,
        "engine_cycles": counters["cycles"], "engine_cycles_total": counters["cycles_total"],
        "engine_cycles_per_step": counters["cycles_total"] / args.steps,
        "engine_cycles_source": counters["cycles_source"],
        "bytes_sent": counters["bytes_sent"], "bytes_received": counters["bytes_received"],
        "jobs": counters["jobs"],
        # means per training step (evaluation excluded), counted by the driver on this backend
        "per_step": {k: v for k, v in per_step.items() if k != "steps"},
        "weights_sha256": weights_digest, "evals": result["evals"],
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out / "history.csv", "w") as f:
        f.write("step,loss,train_acc,grad_bits,weight_flips\n")
        for h in result["history"]:
            f.write(f"{h['step']},{h['loss']:.6f},{h['acc']:.4f},{h['grad_bits']},{h['weight_flips']}\n")
    (out / "metrics.md").write_text(markdown(metrics))
    plot(result["history"], result["evals"], out / "curves.png")
    print(markdown(metrics))
    print(f"wrote {out / 'metrics.json'}")
    return 0


def weights_fingerprint(acc) -> str:
    """SHA-256 of every layer's sign(W) as held by the driver (emu vs sim comparisons)."""
    import hashlib

    h = hashlib.sha256()
    for w in acc.sign_w:
        h.update(np.ascontiguousarray(w, dtype=np.int8).tobytes())
    return h.hexdigest()


def markdown(m: dict) -> str:
    rows = [
        ("backend", m["backend"]), ("model", f"{m['model']} ({' → '.join(m['layers'])})"),
        ("dataset", f"{m['dataset']} ({m['data_source']})"), ("grad bits", f"{m['grad_bits']} (mean {m['mean_grad_bits']:.2f})"),
        ("steps × batch", f"{m['steps']} × {m['batch_size']}"), ("test accuracy", f"{100 * m['test_accuracy']:.2f} %"),
        ("final loss", f"{m['final_loss']:.4f}"),
        ("time per step", f"{1e3 * m['seconds_per_step']:.1f} ms wall, {1e3 * m['cpu_time_s'] / m['steps']:.1f} ms CPU"),
        ("engine cycles per step", f"{m['engine_cycles_per_step']:.0f}"),
        ("DMA bytes (sent / received)", f"{m['bytes_sent']} / {m['bytes_received']}"),
    ]
    return "| metric | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def plot(history, evals, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot(steps, [h["loss"] for h in history], label="train loss")
    ax[0].plot([e["step"] for e in evals], [1 - e["test_acc"] for e in evals], "o-", label="test error")
    ax[0].set_xlabel("step")
    ax[0].legend()
    ax[1].step(steps, [h["grad_bits"] for h in history], where="post")
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("gradient bits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
