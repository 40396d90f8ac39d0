"""``bitcycle bench memory``: training memory of standard vs memory-efficient mode, measured.

One model:  ``bitcycle bench memory --model cnv --batch 100 --json FILE`` writes
``{"standard_bytes", "efficient_bytes", "ratio", "per_layer": [...], ...}`` (saved-for-backward bytes
of one training step, each configuration in its own process, plus that process's peak RSS).

The suite (``make bench-memory``): ``--all`` measures the zoo models at batches 100 and 200 and
trains the MLP and the CNN on Fashion-MNIST in both modes (same seed, epochs, data) for their test
accuracy; writes ``build/bench/memory.json`` and ``build/bench/memory.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bitcycle.bench.provenance import provenance
from bitcycle.errors import BitCycleError

ALL_MODELS = ("tfc", "sfc", "lfc", "cnv", "resnet")
ALL_BATCHES = (100, 200)
TARGETS = {"sfc": 3.0, "lfc": 3.0, "tfc": 3.0, "cnv": 4.0}  # near Wang et al.'s 2.78× (MLP) and 4.17× (CNV)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help=f"zoo model ({', '.join(ALL_MODELS)}); Fashion-MNIST shapes")
    p.add_argument("--batch", type=int, default=100, help="batch size of the measured step")
    p.add_argument("--grad-bits", type=int, default=8, help="gradient bits during the measured step (32 = none)")
    p.add_argument("--all", action="store_true", help="the suite: all zoo models × batches 100, 200 + accuracy runs")
    p.add_argument("--json", default="build/bench/memory.json", help="output JSON (a .md table is written beside it)")
    p.add_argument("--epochs", type=int, default=2, help="accuracy runs: epochs")
    p.add_argument("--train-limit", type=int, default=20000, help="accuracy runs: first N Fashion-MNIST training images")
    p.add_argument("--cnn-width", type=float, default=0.5, help="accuracy runs: width_mult of the CNN (2 shared cores)")
    p.add_argument("--grad-spec", default="cosine:2-8x8", help="accuracy runs: --grad-bits of bitcycle train")
    p.add_argument("--no-accuracy", action="store_true", help="suite without the training runs")
    p.add_argument("--same-process", action="store_true",
                   help="measure in this process (faster; the peak-RSS figures then include earlier work)")


def _kinds(by_dtype: dict) -> str:
    return ", ".join(f"{d} {b}" for d, b in by_dtype.items())


def _mib(b) -> str:
    return f"{b / 2**20:.2f}"


def measure_pair(model: str, batch: int, grad_bits: int, same_process: bool = False) -> dict:
    from bitcycle.train.memory import compare, measure_step, measure_step_subprocess

    from bitcycle.nets import get_model
    from bitcycle.train.memory import ZOO_DEFAULTS, acc_bits_table

    measure = measure_step if same_process else measure_step_subprocess
    std = measure(model, batch, False, grad_bits=grad_bits)
    eff = measure(model, batch, True, grad_bits=grad_bits)
    cfg = ZOO_DEFAULTS[model]
    shape = (cfg["in_channels"], cfg["input_size"], cfg["input_size"]) if "input_size" in cfg else (784,)
    acc = acc_bits_table(get_model(model, **cfg), shape, batch, grad_bits)
    return {**compare(std, eff), "separate_processes": not same_process, "acc_bits": acc}


def accuracy_pair(model: str, model_cfg: dict, args) -> dict:
    """Train ``model`` twice on Fashion-MNIST, standard and memory-efficient, same seed/epochs/data."""
    import torch

    from bitcycle.train.data import load_dataset
    from bitcycle.train.trainer import TrainConfig, train

    data = load_dataset("fashion-mnist", train_limit=args.train_limit, augment=False)
    out = {"model": model, "model_cfg": model_cfg, "epochs": args.epochs, "train_limit": args.train_limit,
           "test_images": int(len(data.test_y)), "grad_bits": args.grad_spec}
    weights = {}
    for mode in ("standard", "efficient"):
        cfg = TrainConfig(model=model, model_cfg=dict(model_cfg), dataset="fashion-mnist", grad_bits=args.grad_spec,
                          epochs=args.epochs, batch_size=100, lr=0.01, seed=0, train_limit=args.train_limit,
                          augment=False, memory_efficient=(mode == "efficient"))
        with tempfile.TemporaryDirectory(dir="build") as tmp:
            m = train(cfg, tmp, progress=True, data=data)
            weights[mode] = torch.load(Path(tmp) / "model.pt", weights_only=False)["state_dict"]
        out[f"{mode}_test_accuracy"] = m["test_accuracy"]
        out[f"{mode}_wall_s"], out[f"{mode}_cpu_s"] = m["wall_time_s"], m["cpu_time_s"]
    out["accuracy_gap_points"] = 100 * (out["standard_test_accuracy"] - out["efficient_test_accuracy"])
    out["final_weights_identical"] = all(torch.equal(weights["standard"][k], weights["efficient"][k]) for k in weights["standard"])
    return out


def markdown(result: dict) -> str:
    lines = ["### Saved-for-backward memory of one training step (measured, Fashion-MNIST shapes)", "",
             "| model | batch | standard MiB | efficient MiB | ratio | target | step peak-RSS increase std → eff MiB | fallbacks |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["runs"]:
        t = TARGETS.get(r["model"])
        lines.append(f"| {r['model']} | {r['batch']} | {_mib(r['standard_bytes'])} | {_mib(r['efficient_bytes'])} | "
                     f"{r['ratio']:.2f}× | {'≥ %.0f×' % t if t and r['batch'] == 100 else ''} | "
                     f"{_mib(r['standard_step_peak_rss_increase'])} → {_mib(r['efficient_step_peak_rss_increase'])} | "
                     f"{', '.join(r['fallbacks']) or 'none'} |")
    for r in result["runs"][:1] + [x for x in result["runs"] if x["model"] == "cnv" and x["batch"] == 100][:1]:
        lines += ["", f"Per layer, {r['model']} at batch {r['batch']} (bytes):", "",
                  "| layer | standard | efficient | standard kinds | efficient kinds |", "|---|---:|---:|---|---|"]
        for row in r["per_layer"]:
            lines.append(f"| {row['layer']} | {row['standard_bytes']} | {row['efficient_bytes']} | "
                         f"{_kinds(row['standard_kinds'])} | {_kinds(row['efficient_kinds'])} |")
    acc_rows = [r for r in result["runs"] if r.get("acc_bits") and r["batch"] == 100]
    if acc_rows:
        lines += ["", "### Minimal accumulator widths per layer (batch 100; forward / backward-data / backward-weight)", "",
                  "| model | layer | K fwd | input bits | fwd | K bwd-data | bwd-data | K bwd-weight | bwd-weight | grad bits |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in acc_rows:
            for a in r["acc_bits"]:
                lines.append(f"| {r['model']} | {a['layer']} | {a['K_forward']} | {a['input_bits']} | {a['forward']} | "
                             f"{a['K_backward_data']} | {a['backward_data']} | {a['K_backward_weight']} | "
                             f"{a['backward_weight']} | {a['grad_bits']} |")
    if result.get("accuracy"):
        lines += ["", "### Test accuracy, standard vs memory-efficient (same seed, epochs, data)", "",
                  "| model | cfg | epochs | train images | grad bits | standard | efficient | gap (points) | final weights identical | wall s std / eff |",
                  "|---|---|---:|---:|---|---:|---:|---:|---|---:|"]
        for a in result["accuracy"]:
            lines.append(f"| {a['model']} | {json.dumps(a['model_cfg'])} | {a['epochs']} | {a['train_limit']} | {a['grad_bits']} | "
                         f"{100 * a['standard_test_accuracy']:.2f} % | {100 * a['efficient_test_accuracy']:.2f} % | "
                         f"{a['accuracy_gap_points']:+.2f} | {'yes' if a['final_weights_identical'] else 'no'} | "
                         f"{a['standard_wall_s']:.0f} / {a['efficient_wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    torch.set_num_threads(1)  # 2 shared cores; the measured processes use 1 thread too
    if not args.all and args.model is None:
        raise BitCycleError("give --model NAME (and --batch B), or --all for the suite")
    if args.model is not None and args.model not in ALL_MODELS:
        raise BitCycleError(f"unknown model {args.model!r}; choose one of {', '.join(ALL_MODELS)}")
    if args.batch < 2:
        raise BitCycleError(f"--batch {args.batch}: BatchNorm needs at least 2 samples")
    if not 1 <= args.grad_bits <= 32:
        raise BitCycleError(f"--grad-bits {args.grad_bits}: give 1..32 (32 = no gradient quantisation)")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path("build").mkdir(exist_ok=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if not args.all:
        result = measure_pair(args.model, args.batch, args.grad_bits, args.same_process)
        result.update(wall_s=time.perf_counter() - wall0, cpu_s=time.process_time() - cpu0, provenance=provenance())
        _write(out, result, markdown({"runs": [result]}))
        print(f"{args.model} batch {args.batch}: standard {_mib(result['standard_bytes'])} MiB, "
              f"efficient {_mib(result['efficient_bytes'])} MiB saved for backward → ratio {result['ratio']:.2f}× → {out}")
        return 0
    configs = [(m, b) for m in ALL_MODELS for b in ALL_BATCHES]
    runs = []
    for model, batch in tqdm(configs, desc="memory", unit="config"):
        runs.append(measure_pair(model, batch, args.grad_bits, args.same_process))
    result = {"runs": runs, "accuracy": []}
    if not args.no_accuracy:
        for model, cfg in (("sfc", {}), ("cnv", {"width_mult": args.cnn_width})):
            result["accuracy"].append(accuracy_pair(model, cfg, args))
    # children's CPU time is in RUSAGE_CHILDREN; record both
    import resource

    result.update(wall_s=time.perf_counter() - wall0, cpu_s=time.process_time() - cpu0, provenance=provenance(),
                  children_cpu_s=resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
                  + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime)
    md = markdown(result)
    _write(out, result, md)
    print(md)
    return 0


def _write(path: Path, result: dict, md: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
    md_path = path.with_suffix(".md")
    md_path.write_text(md)
