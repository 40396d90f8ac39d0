"""``bitcycle train``: train a zoo model with cyclic gradient precision (see bitcycle.train.trainer)."""

from __future__ import annotations

import argparse
import os

from bitcycle.cliutil import add_model_set, add_quiet
from bitcycle.errors import BitCycleError
from bitcycle.quant.grad import DEFAULT_GRAD_BLOCK, GRAD_SCALE_HELP, GRAD_SCALES
from bitcycle.schedule import SPEC_HELP


def _versus(saving: float, anchor: str) -> str:
    """A BOPs saving as a person reads it: "62.50% fewer than X", or "3.69× X" when it costs more."""
    return f"{saving:.2%} fewer than {anchor}" if saving >= 0 else f"{1.0 - saving:.2f}× {anchor}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bitcycle.train.data import DATASETS

    p.add_argument("--model", default="sfc", help="zoo name (tfc sfc lfc cnv resnet) or a models/*.toml file")
    add_model_set(p)
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--data-dir", default=None, help="data set directory (CIFAR-10 batches; Fashion-MNIST IDX files)")
    p.add_argument("--grad-bits", default="fp32", help=SPEC_HELP)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (split over torchrun processes)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (cosine-annealed to 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training samples")
    p.add_argument("--test-limit", type=int, default=None, help="use only the first N test samples")
    p.add_argument("--no-augment", action="store_true", help="no data augmentation")
    p.add_argument("--no-weight-grad-quant", action="store_true", help="quantise only dy, keep dW in float")
    p.add_argument("--grad-scale", choices=GRAD_SCALES, default="row", help=GRAD_SCALE_HELP)
    p.add_argument("--grad-block", type=int, default=DEFAULT_GRAD_BLOCK, metavar="N",
                   help=f"row scales: one per N values along each backward product's reduction axis "
                        f"(default {DEFAULT_GRAD_BLOCK}; 0 = one per whole row)")
    p.add_argument("--memory-efficient", action="store_true",
                   help="save only bit-packed sign(x) (and int8/int16 BN inputs) for backward: same gradients, less memory")
    p.add_argument("--forward-bits", default=None, metavar="SPEC",
                   help="CycleBNN's variant: cycle the forward W/A precision (e.g. cosine:2-8x4) before binarising")
    p.add_argument("--forward-fraction", type=float, default=0.5,
                   help="fraction of the steps with --forward-bits; binary afterwards (default 0.5)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 2, 1 per torchrun process)")
    p.add_argument("--out", required=True, help="run directory: checkpoint, model.pt, metrics.json/.csv/.png")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    import torch

    from bitcycle.train.trainer import TrainConfig, train

    world = int(os.environ.get("WORLD_SIZE", "1"))
    threads = args.threads or (2 if world == 1 else 1)
    if threads < 1:
        raise BitCycleError("--threads must be >= 1")
    torch.set_num_threads(threads)
    cfg = TrainConfig(model=args.model, model_cfg=dict(args.model_set), dataset=args.dataset, data_dir=args.data_dir,
                      grad_bits=args.grad_bits, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, train_limit=args.train_limit, test_limit=args.test_limit,
                      augment=not args.no_augment, quantise_weight_grad=not args.no_weight_grad_quant,
                      grad_scale=args.grad_scale, grad_block=args.grad_block,
                      memory_efficient=args.memory_efficient, forward_bits=args.forward_bits,
                      forward_fraction=args.forward_fraction)
    m = train(cfg, args.out, resume=args.resume, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{m['model']} on {m['dataset']}, grad bits {m['grad_bits']}: test accuracy {m['test_accuracy']:.4f}, "
              f"mean grad bits {m['mean_grad_bits']:.2f}, training BOPs {m['train_bops']:.3e} "
              f"({_versus(m['saving_vs_fp32'], 'an FP32 network')}, {_versus(m['saving_vs_fixed8'], 'fixed 8-bit gradients')}), "
              f"{m['wall_time_s']:.1f} s → {args.out}/metrics.json")
    return 0
