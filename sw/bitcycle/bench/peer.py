"""``bitcycle bench peer`` (``make bench-peer``): BitCycle's trainer beside Brevitas' own BNN recipe.

Fashion-MNIST (bitcycle.data), the same epochs, batch, Adam learning rate and torch threads for
every trainer, all in this one process, run after run interleaved over ``--rounds``:

* **peer** — Brevitas' ``brevitas_examples.bnn_pynq`` recipe on its SFC (``sfc_1w1a``, untrained):
  its model, its SqrHinge loss on ±1 one-hot targets, Adam, ``clip_weights(-1, 1)`` after every
  step and a test pass after every epoch, as its ``trainer.py`` does — the loop written here,
  over the same tensors and the same shuffles as BitCycle's (``bitcycle.train.data.batches``);
* ``bitcycle train --model sfc --grad-bits SPEC`` for each ``--specs`` (default cosine:2-8x2, fp32).

Time per epoch = the run's wall (and process CPU) time / epochs, each including its per-epoch test
pass (and, for ``bitcycle train``, its checkpoint). Ratios are to the peer's time of the same round.

    build/bench/peer.json   every run as measured + the targets, checked on the median round
    build/bench/peer.md     the table
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bitcycle.bench.provenance import provenance

TARGETS = {"time_vs_peer": 1.0, "time_vs_fp32": 1.2}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--specs", default="cosine:2-8x2,fp32", help="comma list of bitcycle grad-bits SPECs")
    p.add_argument("--rounds", type=int, default=1, help="times each trainer runs, interleaved (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, default=None, help="first N training samples only (quick checks)")
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--out", default="build/bench", help="writes OUT/peer.json and OUT/peer.md")


def _evaluate(model, x, y, batch: int = 1000) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train()
    return correct / len(y)


def run_peer(data, epochs: int, batch_size: int, lr: float, seed: int) -> dict:
    """Brevitas bnn_pynq's training recipe on its SFC, in process (module docstring)."""
    import torch
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    from brevitas_examples.bnn_pynq.models.losses import SqrHingeLoss

    from bitcycle.train.data import batches

    torch.manual_seed(seed)
    model, _ = model_with_cfg("sfc_1w1a", False)
    model.train()
    criterion = SqrHingeLoss()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0)
    accs = []
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        for bx, by in batches(data.train_x, data.train_y, batch_size, epoch, seed):
            target = torch.full((len(by), data.num_classes), -1.0)
            target.scatter_(1, by.unsqueeze(1), 1.0)
            loss = criterion(model(bx), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.clip_weights(-1, 1)
        accs.append(_evaluate(model, data.test_x, data.test_y))
    return {"test_accuracy": accs[-1], "accuracy_per_epoch": accs,
            "wall_s": time.perf_counter() - t_wall, "cpu_s": time.process_time() - t_cpu}


def run_bitcycle(data, spec: str, epochs: int, batch_size: int, lr: float, seed: int) -> dict:
    from bitcycle.train.trainer import TrainConfig, train

    cfg = TrainConfig(model="sfc", grad_bits=spec, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    with tempfile.TemporaryDirectory() as out:
        m = train(cfg, out, data=data, progress=False)
    return {"test_accuracy": m["test_accuracy"], "wall_s": m["wall_time_s"], "cpu_s": m["cpu_time_s"]}


def _median_row(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def table(report: dict) -> str:
    e = report["config"]["epochs"]
    lines = [f"Fashion-MNIST, {e} epochs, batch {report['config']['batch_size']}, Adam lr {report['config']['lr']}, "
             f"{report['config']['threads']} torch threads, {report['config']['rounds']} round(s) interleaved "
             "(median round; ratio = per-round time / the peer's in that round, median)", "",
             "| trainer | test accuracy | time per epoch, wall | CPU | wall ratio to peer | CPU ratio to peer |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in report["trainers"].values():
        lines.append(f"| {row['label']} | {100 * row['test_accuracy']:.2f} % | {row['wall_per_epoch_s']:.2f} s | "
                     f"{row['cpu_per_epoch_s']:.2f} s | {row['wall_ratio_to_peer']:.2f}× | {row['cpu_ratio_to_peer']:.2f}× |")
    lines.append("")
    for name, ok in report["checks"].items():
        lines.append(f"- {name}: {'met' if ok['met'] else 'NOT met'} ({ok['value']:.2f} vs target {ok['target']})")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import torch

    from bitcycle.schedule import parse_grad_bits
    from bitcycle.train.data import load_dataset

    torch.set_num_threads(args.threads)
    specs = [s.strip() for s in args.specs.split(",") if s.strip()]
    for s in specs:
        parse_grad_bits(s)
    data = load_dataset("fashion-mnist", train_limit=args.train_limit, test_limit=args.test_limit)
    runs: dict[str, list[dict]] = {"peer": [], **{s: [] for s in specs}}
    for r in range(args.rounds):
        for name in runs:  # interleaved: peer, then every spec, round after round
            if name == "peer":
                m = run_peer(data, args.epochs, args.batch_size, args.lr, args.seed)
            else:
                m = run_bitcycle(data, name, args.epochs, args.batch_size, args.lr, args.seed)
            m["round"] = r
            runs[name].append(m)
            print(f"round {r} {name}: acc {100 * m['test_accuracy']:.2f} %, {m['wall_s'] / args.epochs:.2f} s/epoch wall, "
                  f"{m['cpu_s'] / args.epochs:.2f} s CPU", flush=True)
    trainers = {}
    for name, rs in runs.items():
        ratio_w = [m["wall_s"] / p["wall_s"] for m, p in zip(rs, runs["peer"])]
        ratio_c = [m["cpu_s"] / p["cpu_s"] for m, p in zip(rs, runs["peer"])]
        label = "Brevitas bnn_pynq SFC (peer)" if name == "peer" else f"`bitcycle train --model sfc --grad-bits {name}`"
        trainers[name] = {"label": label, "runs": rs, "test_accuracy": _median_row(rs, "test_accuracy"),
                          "wall_per_epoch_s": _median_row(rs, "wall_s") / args.epochs,
                          "cpu_per_epoch_s": _median_row(rs, "cpu_s") / args.epochs,
                          "wall_ratio_to_peer": statistics.median(ratio_w), "cpu_ratio_to_peer": statistics.median(ratio_c)}
    checks = {}
    quant = [s for s in specs if s != "fp32"]
    if quant:
        q = trainers[quant[0]]
        checks[f"{quant[0]} wall time ≤ {TARGETS['time_vs_peer']}× peer"] = {
            "value": q["wall_ratio_to_peer"], "target": TARGETS["time_vs_peer"],
            "met": q["wall_ratio_to_peer"] <= TARGETS["time_vs_peer"]}
        checks[f"{quant[0]} accuracy ≥ peer"] = {"value": 100 * q["test_accuracy"], "target": round(100 * trainers["peer"]["test_accuracy"], 2),
                                                  "met": q["test_accuracy"] >= trainers["peer"]["test_accuracy"]}
        if "fp32" in trainers:
            rw = statistics.median(m["wall_s"] / f["wall_s"] for m, f in zip(q["runs"], trainers["fp32"]["runs"]))
            checks[f"{quant[0]} wall time ≤ {TARGETS['time_vs_fp32']}× bitcycle fp32"] = {
                "value": rw, "target": TARGETS["time_vs_fp32"], "met": rw <= TARGETS["time_vs_fp32"]}
    report = {"config": {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "threads", "rounds", "seed",
                                                       "train_limit", "test_limit")} | {"specs": specs,
                                                                                       "torch": torch.__version__},
              "trainers": trainers, "checks": checks, "targets": TARGETS}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report["provenance"] = provenance()  # machine, CPU, commit, date of these figures
    (out / "peer.json").write_text(json.dumps(report, indent=2))
    md = table(report)
    (out / "peer.md").write_text(md)
    print(md)
    return 0
