"""``bitcycle bench grad-error``: how far the quantised weight gradient is from the exact one.

For a trained model (a ``bitcycle train`` run directory) and one Fashion-MNIST batch, every binary
layer's weight gradient is computed in float (``grad bits 32``) and then through the gradient
quantiser at each (bits, block, dW quantised?) setting, with the same forward pass. Per layer:

    relative error  ‖g_q − g‖ / ‖g‖        cosine  cos(g_q, g)

beside the minibatch noise the optimiser sees anyway — the same relative difference between the
float gradients of two disjoint batches. Deterministic (seeded), one forward/backward per setting:
it takes seconds, so it is the cheap way to compare quantiser designs before a training run.

Writes ``OUT/grad_error.json`` and ``OUT/grad_error.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bitcycle.bench.provenance import provenance
from bitcycle.errors import BitCycleError

DEFAULT_SETTINGS = "2/16/1,2/16/0,2/8/1,2/8/0,2/4/1,2/0/1,3/16/1,4/16/1,8/16/1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default="build/bench/train/cnv-fixed8",
                   help="a bitcycle train run directory (default: the CNN fixed:8 run of make bench-train)")
    p.add_argument("--settings", default=DEFAULT_SETTINGS,
                   help="comma list of BITS/BLOCK/WQ (WQ 1: dW quantised too, 0: only dy), row scales")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=1, help="stochastic-rounding seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="build/bench", help="writes OUT/grad_error.json and .md")


def _parse_settings(text: str) -> list[tuple[int, int, bool]]:
    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        try:
            bits, block, wq = (int(v) for v in item.split("/"))
        except ValueError:
            raise BitCycleError(f"--settings {item!r}: write BITS/BLOCK/WQ, e.g. 2/16/1") from None
        if not 1 <= bits <= 31 or block < 0 or wq not in (0, 1):
            raise BitCycleError(f"--settings {item!r}: BITS in 1..31, BLOCK >= 0, WQ 0 or 1")
        out.append((bits, block, bool(wq)))
    if not out:
        raise BitCycleError("--settings is empty; give e.g. 2/16/1")
    return out


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F

    from bitcycle.quant.grad import (grad_quant_layers, seed_grad_quant, set_grad_bits, set_grad_scale,
                                     set_weight_grad_quant)
    from bitcycle.train import checkpoint as ckpt
    from bitcycle.train.data import load_dataset

    settings = _parse_settings(args.settings)
    torch.set_num_threads(args.threads)
    model = ckpt.load_trained(args.checkpoint).train()
    data = load_dataset("fashion-mnist", train_limit=2 * args.batch_size, test_limit=1)
    if len(data.train_y) < 2 * args.batch_size:
        raise BitCycleError(f"--batch-size {args.batch_size}: needs {2 * args.batch_size} training images")
    b = args.batch_size
    batch_a, batch_b = (data.train_x[:b], data.train_y[:b]), (data.train_x[b:2 * b], data.train_y[b:2 * b])
    layers = grad_quant_layers(model)
    names = [n for n, m in model.named_modules() if m in layers]

    def grads(batch, bits: int, block: int = 0, wq: bool = True) -> list:
        set_grad_bits(model, bits)
        set_grad_scale(model, "row", block)
        set_weight_grad_quant(model, wq)
        torch.manual_seed(0)  # BatchNorm in train mode is deterministic; this pins anything else
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch[0]), batch[1]).backward()
        return [layer.weight.grad.detach().clone() for layer in layers]

    def compare(got, ref) -> tuple[list, list]:
        rel = [float((g - r).norm() / r.norm()) for g, r in zip(got, ref)]
        cos = [float(F.cosine_similarity(g.flatten(), r.flatten(), dim=0)) for g, r in zip(got, ref)]
        return rel, cos

    exact = grads(batch_a, 32)
    noise_rel, noise_cos = compare(grads(batch_b, 32), exact)
    rows = [{"setting": "fp32, another batch", "bits": 32, "block": None, "weight_grad_quant": False,
             "relative_error": noise_rel, "cosine": noise_cos}]
    for bits, block, wq in settings:
        seed_grad_quant(model, args.seed)
        rel, cos = compare(grads(batch_a, bits, block, wq), exact)
        rows.append({"setting": f"{bits} bits, block {block}, dW {'quantised' if wq else 'float'}", "bits": bits,
                     "block": block, "weight_grad_quant": wq, "relative_error": rel, "cosine": cos})
    report = {"bench": "grad-error", "provenance": provenance(), "checkpoint": str(args.checkpoint), "batch_size": b, "seed": args.seed,
              "layers": names, "rows": rows}
    out = Path(args.out)
    ckpt.atomic_write_json(out / "grad_error.json", report)
    table = markdown_table(report)
    ckpt.atomic_write_text(out / "grad_error.md", table)
    print(table)
    return 0


def markdown_table(report: dict) -> str:
    n = len(report["layers"])
    head = " | ".join(f"L{i}" for i in range(n))
    lines = [f"Weight-gradient error vs the float gradient of the same batch ({report['checkpoint']}, batch "
             f"{report['batch_size']}, seed {report['seed']}); relative error ‖g_q − g‖/‖g‖ per binary layer "
             f"L0…L{n - 1} (input side first), mean cosine last. The first row is a second batch's float "
             f"gradient: the minibatch noise.", "",
             f"| setting | {head} | mean cos |", "|---|" + "---:|" * (n + 1)]
    for r in report["rows"]:
        cells = " | ".join(f"{v:.2f}" for v in r["relative_error"])
        lines.append(f"| {r['setting']} | {cells} | {sum(r['cosine']) / n:.2f} |")
    return "\n".join(lines) + "\n"
