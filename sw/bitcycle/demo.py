"""Walking skeleton, end to end: one command through every stage of BitCycle.

1. train a W1A1 MLP (8-bit first-layer input) in Brevitas on sklearn's digits;
2. export it to QONNX and run the compile flow's FINN passes (ConvertQONNXtoFINN, Streamline with
   BatchNorm → thresholds, XNOR-popcount conversion, binary MVAU inference) with execute_onnx;
3. compare torch with FINN's execution on N test images, at levels FINN's passes preserve;
4. run every layer's operands through the golden bit-serial model and BitCycle's engine RTL
   (Verilated, driven by the product's driver) and compare the integer pre-activations;
5. exit 1 on any mismatch.

What is compared, and why it holds for any trained model (any seed, any CPU):

- **layer inputs** (the 8-bit quantised image for layer 0, the ±1 activations after each
  BatchNorm + sign for the others): torch's values and FINN's are the same function of the
  weights, so they must be equal element by element;
- **pre-activations** (each binary layer's integer dot products): FINN's ``Streamline`` negates
  the weight row of every channel whose BatchNorm has γ < 0 (a legal rewrite: the threshold flips
  with it), so its pre-activation of that channel is torch's negated. The demo reads each row's
  sign off FINN's weight matrix against torch's, requires every row to be equal or exactly negated,
  and undoes the recorded negations before comparing;
- **predictions** of FINN's MVAU graph against torch's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HIDDEN = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=32, help="test images checked bit-exactly (≥ 32)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="build/demo", help="directory for the model, graphs and demo.json")
    parser.add_argument("--no-rtl", action="store_true", help="skip the Verilator run of the engine")


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def digits_split(seed: int):
    from sklearn.datasets import load_digits

    digits = load_digits()
    # The zoo's MLP maps inputs in [0, 1] to 2x−1 and quantises that to 8 bits (q/127). Deliver
    # the pixels on that grid, as a camera or DMA delivers 8-bit integers: a value exactly half-way
    # between two steps is rounded half-to-even by Brevitas but upwards by FINN's MultiThreshold,
    # and the two would disagree on it.
    q = np.round((digits.data / 16.0 * 2.0 - 1.0) * 127.0)
    x = ((q / 127.0 + 1.0) / 2.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[:1400], order[1400:]
    return x[train], digits.target[train], x[test], digits.target[test]


def build_model():
    from bitcycle.nets import get_model

    return get_model("sfc", in_features=64, hidden=(HIDDEN, HIDDEN), num_classes=10)


def train(model, x, y, epochs: int, seed: int):
    import torch
    from tqdm import tqdm

    from bitcycle.nets import clip_latent_weights

    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in tqdm(range(epochs), desc="train", unit="epoch", file=sys.stdout):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            batch = perm[i : i + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            clip_latent_weights(model)
    model.eval()
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bitcycle demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    import warnings

    import torch

    warnings.filterwarnings("ignore")

    from bitcycle.demo_check import check_model
    from bitcycle.errors import BitCycleError

    if args.images < 32:
        raise BitCycleError(f"--images must be ≥ 32 for the agreement check, got {args.images}")
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    _step("1/5 train a W1A1 MLP (8-bit input) on sklearn digits")
    xtr, ytr, xte, yte = digits_split(args.seed)
    torch.manual_seed(args.seed)
    model = train(build_model(), xtr, ytr, args.epochs, args.seed)
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
    print(f"test accuracy: {accuracy:.2%} on {len(yte)} digits")

    result = check_model(model, xte[: args.images], out, rtl=not args.no_rtl, say=_step)
    result = {"test_accuracy": accuracy, "seed": args.seed, **result, "wall_s": round(time.perf_counter() - t0, 2)}
    (out / "demo.json").write_text(json.dumps(result, indent=2))
    print(f"results: {out / 'demo.json'}")
    return 1 if result["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
