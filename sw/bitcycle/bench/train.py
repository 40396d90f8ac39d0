"""``bitcycle bench train`` (``make bench-train``): cyclic vs fixed vs FP32 gradients on Fashion-MNIST,
beside CycleBNN's / CPT's own recipe (forward W/A precision cycled, gradients fixed at 8 bits).

Runs the LFC-like MLP (models/lfc-fmnist.toml) and the CNV-like CNN (models/cnv-fmnist.toml,
narrowed to 1/2 of FINN's channels) with each row SPEC — same seed, same epochs — and writes
the files below. Row SPECs and the two cost accountings (CycleBNN's cost line and BitCycle's
BOPs / engine bit-planes): ``bitcycle.bench.train_rows``. Defaults (10 MLP epochs at lr 0.02, 15 CNN epochs at lr 0.05, batch 256, two runs at a time on one torch
thread each) took about 1.5 h on 2 idle cores for the six gradient rows; the four CycleBNN/CPT rows
(``--cyclebnn``) add an estimated 0.8 h; ``--cyclebnn ''`` drops them and ``--cnn-train-limit N``
trains the CNN on the first N samples only.


    build/bench/train.json   every run's metrics (as measured) + the issue's targets, checked
    build/bench/train.md     the Markdown table printed at the end
    build/bench/train.png    test accuracy and gradient bits per run
    build/bench/train/RUN/   each run's own directory (metrics.json/.csv/.png, model.pt)

train.json is rewritten after every run, so an interrupted benchmark keeps what it measured, and
every run checkpoints (each epoch, and where Ctrl-C stopped it): ``--resume`` continues each run
from its own checkpoint — a finished run only has its metrics re-read — instead of starting again.
A run's wall and CPU times then add up its sessions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import time
from dataclasses import asdict
from pathlib import Path

from bitcycle.bench.provenance import REPO, provenance
from bitcycle.bench.train_rows import ROW_SPEC_HELP, RowSpec, cyclebnn_specs, parse_row_spec, row_costs, run_name
from bitcycle.bench.train_table import markdown_table, plot
from bitcycle.train import checkpoint as ckpt
from bitcycle.train.interrupt import STOP_SIGNALS, TrainingInterrupted

MODEL_FILES = {"lfc": REPO / "models" / "lfc-fmnist.toml", "cnv": REPO / "models" / "cnv-fmnist.toml"}
TARGETS = {"cycles_saving_vs_fixed8": 0.35, "bops_saving_vs_fp32": 0.96, "acc_gap_vs_fixed8": 0.01,
           "acc_lfc": 0.87, "acc_cnv": 0.90}


EPILOG = """rows:
  GRAD            BitCycle's gradient cycling: a grad-bits SPEC (fp32, fixed:B, cosine:L-HxC,
                  triangle:L-HxC), forward pass binary (W1A1)
  fwd:FWD+GRAD    CycleBNN's / CPT's recipe: forward W/A bits follow FWD for the first
                  --forward-fraction of the steps (binary afterwards), gradients follow GRAD,
                  e.g. fwd:cosine:2-6x4+fixed:8; --cyclebnn 2-6,3-8 (the default) adds
                  fwd:cosine:2-6xC+fixed:8 and fwd:cosine:3-8xC+fixed:8, C = --cyclebnn-cycles
  bitcycle.schedule's cosine is CycleBNN's rint(L + (H-L)/2*(1+cos(pi*(t mod T)/T + pi))):
  1+cos(x+pi) = 1-cos(x), each cycle rises from L; it rounds half up where CycleBNN's
  np.rint rounds half to even, the same bits at every step for 2-6 and 3-8.

costs (both columns in train.md and train.json):
  CycleBNN's line  per step fw = b*b/32/32; eb = b*g/32/32; gc = eb; cr = (fw+eb+gc)/3
                   (b forward W/A bits, 1 = binary; g gradient bits), a run's cr = mean over steps
  BitCycle's       bitcycle.train.ops: BOPs from each layer's MACs, and the bit-serial engine's
                   bit-planes (cost ∝ bits of the integer operand), each vs a W1A1 net with
                   fixed:8 gradients over the same steps
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--models", default="lfc,cnv", help="comma list of lfc, cnv")
    p.add_argument("--specs", default="fp32,fixed:8,cosine:2-8x8", help=ROW_SPEC_HELP)
    p.add_argument("--cyclebnn", default="2-6,3-8",
                   help="CycleBNN's (2-6) and CPT's (3-8) recipe rows: forward W/A cosine L-H, gradients fixed:8; "
                        "each L-H adds fwd:cosine:L-HxC+fixed:8 after --specs ('' for none)")
    p.add_argument("--cyclebnn-cycles", type=int, default=4,
                   help="C of the --cyclebnn rows: cosine cycles within the forward-cycling steps (default 4: with "
                        "--forward-fraction 0.5 the same period as cosine:2-8x8's gradient cycles)")
    p.add_argument("--forward-fraction", type=float, default=0.5,
                   help="fwd: rows cycle the forward precision for this fraction of the steps, then train binary "
                        "(evaluation is always W1A1; default 0.5, bitcycle train's)")
    p.add_argument("--epochs-mlp", type=int, default=10)
    p.add_argument("--epochs-cnn", type=int, default=15)
    p.add_argument("--cnn-train-limit", type=int, default=0,
                   help="the CNN trains on the first N training samples only (time budget; 0 = all 60000)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr-mlp", type=float, default=0.02, help="Adam learning rate of the MLP runs")
    p.add_argument("--lr-cnn", type=float, default=0.05,
                   help="Adam learning rate of the CNN runs (0.05: 2.4 points above 0.02 after 2 epochs, docs/training.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, each in its own process (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--grad-scale", default="row", help="gradient quantiser scales: row (default) or tensor")
    p.add_argument("--grad-block", type=int, default=None, help="row scales: values per scale (default: bitcycle train's)")
    p.add_argument("--train-limit", type=int, default=None, help="first N training samples only (quick checks)")
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--out", default="build/bench", help="writes OUT/train.json, .md, .png and OUT/train/RUN/")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted benchmark: each run from its checkpoint in OUT/train/RUN/ (same options)")


_run_name = run_name  # the name tests and older callers use
__all__ = ["add_arguments", "run", "check_targets", "markdown_table", "plot", "run_name"]


def _train_job(job: dict) -> dict:
    """One benchmark run (in this process or a worker process): train, return its table row."""
    import torch

    from bitcycle.train.data import load_dataset
    from bitcycle.train.trainer import TrainConfig, train

    torch.set_num_threads(job["threads"])
    data = load_dataset("fashion-mnist", train_limit=job["train_limit"], test_limit=job["test_limit"])
    cfg = TrainConfig(**job["cfg"])
    resume = job["resume"] and (Path(job["run_dir"]) / ckpt.CHECKPOINT).is_file()
    on_step = None if _STEP_QUEUE is None else (lambda step: _STEP_QUEUE.put(1))
    m = train(cfg, job["run_dir"], data=data, progress=job["progress"], resume=resume, on_step=on_step)
    return {"run": job["name"], "model": job["model"], "model_cfg": m["model_cfg"], "spec": job["spec"],
            "recipe": parse_row_spec(job["spec"]).recipe, "grad_bits": cfg.grad_bits, "forward_bits": cfg.forward_bits,
            "forward_fraction": cfg.forward_fraction if cfg.forward_bits else None,
            "grad_scale": cfg.grad_scale, "grad_block": cfg.grad_block, "epochs": cfg.epochs, "train_samples": m["steps_per_epoch"] * cfg.batch_size,
            "steps": m["steps"], "test_accuracy": m["test_accuracy"], "best_test_accuracy": m["best_test_accuracy"],
            "accuracy_per_epoch": [e["test_acc"] for e in m["epochs_detail"]],
            "mean_grad_bits": m["mean_grad_bits"], "train_bops": m["train_bops"],
            "fp32_bops": m["fp32_bops"], "saving_vs_fp32": m["saving_vs_fp32"],
            "saving_vs_fixed8": m["saving_vs_fixed8"],
            "engine_backward_planes": m["engine_backward_planes"],
            "engine_backward_saving_vs_fixed8": m["engine_backward_saving_vs_fixed8"],
            "host_scale_muls": m["host_scale_muls"],
            "host_scale_muls_per_backward_mac": m["host_scale_muls_per_backward_mac"],
            "threads": job["threads"], "resumed": resume, "wall_time_s": m["wall_time_s"], "cpu_time_s": m["cpu_time_s"],
            "bits_per_step": m["bits_per_step"], **row_costs(m, cfg.batch_size)}


def run(args: argparse.Namespace) -> int:
    from bitcycle.errors import BitCycleError
    from bitcycle.quant.grad import check_grad_scale
    from bitcycle.train.data import load_dataset, steps_per_epoch
    from bitcycle.train.trainer import TrainConfig

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    rows: list[RowSpec] = [parse_row_spec(s) for s in args.specs.split(",") if s.strip()]
    rows += [r for r in cyclebnn_specs(args.cyclebnn, args.cyclebnn_cycles) if r not in rows]
    specs = [str(r) for r in rows]
    if len(set(specs)) != len(specs):
        raise BitCycleError(f"bench train: a row SPEC appears twice in {', '.join(specs)}; give each once")
    check_grad_scale(args.grad_scale)
    if args.jobs < 1 or args.threads < 1:
        raise BitCycleError("bench train: --jobs and --threads must be >= 1")
    for m in models:
        if m not in MODEL_FILES:
            raise BitCycleError(f"bench train: unknown model {m!r}; choose from {', '.join(MODEL_FILES)}")
    out = Path(args.out)
    runs_dir = out / "train"
    data = load_dataset("fashion-mnist", train_limit=args.train_limit, test_limit=args.test_limit)  # fail fast
    n_train = len(data.train_y)
    epochs = {"lfc": args.epochs_mlp, "cnv": args.epochs_cnn}
    lr = {"lfc": args.lr_mlp, "cnv": args.lr_cnn}
    jobs = []
    for model in models:
        for row in rows:
            spec = str(row)
            name = run_name(model, spec)
            limit = args.train_limit
            if model == "cnv" and args.cnn_train_limit:
                limit = min(limit or args.cnn_train_limit, args.cnn_train_limit)
            cfg = TrainConfig(model=str(MODEL_FILES[model]), dataset="fashion-mnist", grad_bits=row.grad,
                              forward_bits=row.forward, forward_fraction=args.forward_fraction,
                              epochs=epochs[model], batch_size=args.batch_size, lr=lr[model], seed=args.seed,
                              train_limit=limit, test_limit=args.test_limit, grad_scale=args.grad_scale,
                              **({} if args.grad_block is None else {"grad_block": args.grad_block}))
            cfg.check()
            jobs.append({"name": name, "model": model, "spec": spec, "cfg": asdict(cfg), "run_dir": str(runs_dir / name),
                         "threads": args.threads, "train_limit": args.train_limit, "test_limit": args.test_limit,
                         "progress": args.jobs == 1, "resume": args.resume,
                         "steps": cfg.epochs * steps_per_epoch(min(limit or n_train, n_train), args.batch_size)})
    t0, c0 = time.perf_counter(), time.process_time()
    results: list[dict] = []
    report = {"provenance": provenance(), "bench": "train", "dataset": "fashion-mnist", "train_samples": len(data.train_y),
              "test_samples": len(data.test_y), "jobs": args.jobs, "threads": args.threads,
              "batch_size": args.batch_size, "lr": lr, "seed": args.seed, "grad_scale": args.grad_scale,
              "grad_block": jobs[0]["cfg"]["grad_block"] if jobs else None,
              "forward_fraction": args.forward_fraction if any(r.forward for r in rows) else None,
              "cost_models": {"cyclebnn": "fw = b*b/32/32; eb = b*g/32/32; gc = eb; cr = (fw+eb+gc)/3 per step, mean over "
                                          "steps (b: forward W/A bits, 1 = binary; g: gradient bits)",
                              "bitcycle": "bitcycle.train.ops: BOPs per layer MAC, engine bit-planes; reference W1A1 "
                                          "fixed:8 gradients over the same steps"},
              "epochs": epochs, "resumed": args.resume, "complete": False,
              "runs": results}
    del data
    order = [j["name"] for j in jobs]

    def finished(row: dict) -> None:
        results.append(row)
        results.sort(key=lambda r: order.index(r["run"]))
        print(f"== {row['run']}: test accuracy {row['test_accuracy']:.4f} after {row['epochs']} epochs, "
              f"{row['wall_time_s']:.0f} s wall, {row['cpu_time_s']:.0f} s CPU", flush=True)
        report["wall_time_s"] = time.perf_counter() - t0
        report["cpu_time_s"] = _cpu_time(c0, results)
        ckpt.atomic_write_json(out / "train.json", report)

    if not args.resume:
        for j in jobs:
            shutil.rmtree(j["run_dir"], ignore_errors=True)  # every figure comes from this run
    if args.jobs == 1:
        for j in jobs:
            print(f"== {j['name']}: {j['cfg']['epochs']} epochs", flush=True)
            finished(_train_job(j))
    else:
        _run_parallel(jobs, args, finished)
    report["targets"] = check_targets(results)
    report["complete"] = True
    report["wall_time_s"] = time.perf_counter() - t0
    report["cpu_time_s"] = _cpu_time(c0, results)
    ckpt.atomic_write_json(out / "train.json", report)
    table = markdown_table(report)
    ckpt.atomic_write_text(out / "train.md", table)
    ckpt.atomic_write_bytes(out / "train.png", plot(results))
    print(table)
    return 0


_STEP_QUEUE = None  # in a worker process: where each finished training step is counted


def _worker_init(step_queue) -> None:
    """A worker between runs ignores Ctrl-C and SIGTERM; during a run the trainer's StopGuard takes
    them (finish the step, checkpoint, stop)."""
    global _STEP_QUEUE
    _STEP_QUEUE = step_queue
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _run_parallel(jobs: list[dict], args: argparse.Namespace, finished) -> None:
    """Runs in parallel worker processes, one torch thread each by default: small binary layers use
    a second thread poorly, a second run uses it fully. Spawned, not forked: a forked child of a
    process whose OpenMP pool has run can hang. At most ``--jobs`` runs are handed out at a time,
    so that an interrupt leaves none queued; one progress bar counts the steps of all runs."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    import multiprocessing
    import queue

    from tqdm import tqdm

    ctx = multiprocessing.get_context("spawn")
    todo = sorted(jobs, key=lambda j: j["model"] != "cnv")  # the CNN runs first: the longest jobs first keeps both workers busy
    print(f"{len(jobs)} runs on {args.jobs} worker processes × {args.threads} threads; each line below is one finished run",
          flush=True)
    steps = ctx.Queue()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx, initializer=_worker_init, initargs=(steps,)) as pool, \
            tqdm(total=sum(j["steps"] for j in jobs), unit="step", desc="bench train", dynamic_ncols=True) as bar:
        pending: set = set()
        n_done = 0
        try:
            while todo or pending:
                while todo and len(pending) < args.jobs:
                    pending.add(pool.submit(_train_job, todo.pop(0)))
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                bar.update(_drain(steps, queue.Empty))
                for fut in done:
                    bar.clear()
                    finished(fut.result())
                    n_done += 1
                    bar.refresh()
        except BaseException as err:
            # Ctrl-C here, or a run that failed: the runs still going stop at their next step with a
            # checkpoint (a Ctrl-C at the terminal reaches the workers too; a signal to this process alone does not)
            for child in multiprocessing.active_children():
                if child.pid is not None:
                    os.kill(child.pid, signal.SIGTERM)
            wait(pending)
            if not isinstance(err, KeyboardInterrupt):
                raise
            kept = f"{n_done} finished run(s) in {args.out}/train.json, " if n_done else ""
            raise TrainingInterrupted(f"{kept}{len(pending) + len(todo)} run(s) left, checkpointed in {args.out}/train/RUN/ "
                                      f"where started; continue with the same command and --resume") from None


def _drain(q, empty) -> int:
    """How many steps the workers have reported since the last call."""
    n = 0
    while True:
        try:
            n += q.get_nowait()
        except empty:
            return n


def _cpu_time(c0: float, results: list[dict]) -> float:
    """CPU seconds of the benchmark: this process since ``c0`` plus every finished run's own."""
    return time.process_time() - c0 + sum(r["cpu_time_s"] for r in results)


def check_targets(results: list[dict]) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met."""
    by = {(r["model"], r.get("spec", r["grad_bits"])): r for r in results}
    checks = []
    for model in sorted({r["model"] for r in results}):
        cyc, fixed = by.get((model, "cosine:2-8x8")), by.get((model, "fixed:8"))
        if cyc:
            checks.append({"model": model, "target": "cosine engine backward cycles saving vs fixed:8 >= 35 %",
                           "measured": cyc["engine_backward_saving_vs_fixed8"],
                           "met": cyc["engine_backward_saving_vs_fixed8"] >= TARGETS["cycles_saving_vs_fixed8"]})
            checks.append({"model": model, "target": "cosine BOPs saving vs FP32 training >= 96 %",
                           "measured": cyc["saving_vs_fp32"], "met": cyc["saving_vs_fp32"] >= TARGETS["bops_saving_vs_fp32"]})
        if cyc and fixed:
            gap = fixed["test_accuracy"] - cyc["test_accuracy"]
            checks.append({"model": model, "target": "cosine accuracy within 1.0 point of fixed:8",
                           "measured": gap, "met": gap <= TARGETS["acc_gap_vs_fixed8"]})
        goal = TARGETS.get(f"acc_{model}")
        if goal is not None:
            best = max(r["test_accuracy"] for r in results if r["model"] == model)
            checks.append({"model": model, "target": f"test accuracy >= {goal:.0%}", "measured": best, "met": best >= goal})
    return checks


