"""Walking skeleton, end to end: one command through every stage of BitCycle.

1. train a W1A1 MLP (8-bit first-layer input) in Brevitas on sklearn's digits;
2. export it to QONNX and run FINN's transformations (ConvertQONNXtoFINN, Streamline with
   BatchNorm → thresholds, XNOR-popcount conversion, binary MVAU inference) with execute_onnx;
3. take the integer pre-activations of the layers on N test images from torch, from FINN's
   execution, from the golden bit-serial model and from the RTL MAC row in Verilator;
4. print whether all four agree bit-exactly (exit 1 on any mismatch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HIDDEN = 64
RTL_SIMD = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=32, help="test images checked bit-exactly (≥ 32)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="build/demo", help="directory for the model, graphs and demo.json")
    parser.add_argument("--no-rtl", action="store_true", help="skip the Verilator run")


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


class _FinnFlow:
    """The skeleton's view of the compile stage: export and FINN passes from bitcycle.compile,
    plus the look into each matrix layer's operands and pre-activations that the demo compares."""

    @staticmethod
    def export_qonnx(model, shape, path):
        from bitcycle.compile.export import export_qonnx, prepare

        # pixel_max=1: the inputs are already floats in [0, 1] on the 8-bit grid (see digits_split)
        export_qonnx(prepare(model, shape, pixel_max=1.0, name="sfc-digits"), path)

    @staticmethod
    def streamline_to_xnor(path):
        from qonnx.core.modelwrapper import ModelWrapper

        from bitcycle.compile import passes as P

        graphs = []
        m = ModelWrapper(str(path))
        for name, steps in (("qonnx", [P.CheckSupportedQONNX(), P.TidyUp()]), ("finn", [P.ToFinn()]),
                            ("streamlined", [P.StreamlineBnn()]), ("xnor", [P.ToXnorPopcount(), P.CheckStreamlined()])):
            for step in steps:
                m = m.transform(step)
            graphs.append((name, m))
        return graphs

    @staticmethod
    def to_binary_mvau(model):
        from bitcycle.compile import passes as P

        return model.transform(P.InferHwLayers()).transform(P.CheckHwMapped())

    @staticmethod
    def execute(model, x):
        from qonnx.core.onnx_exec import execute_onnx

        iname, oname = model.graph.input[0].name, model.graph.output[0].name
        return np.concatenate([execute_onnx(model, {iname: x[i : i + 1]})[oname] for i in range(len(x))])

    @staticmethod
    def _contexts(model, x):
        from qonnx.core.onnx_exec import execute_onnx

        iname = model.graph.input[0].name
        return [execute_onnx(model, {iname: x[i : i + 1]}, return_full_exec_context=True) for i in range(len(x))]

    @staticmethod
    def _matmuls(model):
        return [n for n in model.graph.node if n.op_type in ("MatMul", "XnorPopcountMatMul")]

    @classmethod
    def matmul_preactivations(cls, model, x):
        ctxs = cls._contexts(model, x)
        pre = {}
        for i, node in enumerate(cls._matmuls(model)):
            v = np.concatenate([c[node.output[0]] for c in ctxs])
            if node.op_type == "XnorPopcountMatMul":  # popcount of matches → bipolar dot product
                v = 2 * v - model.get_tensor_shape(node.input[0])[-1]
            pre[i] = np.rint(v).astype(np.int64)
        return pre

    @classmethod
    def layer_input_ints(cls, model, i, x):
        node = cls._matmuls(model)[i]
        v = np.concatenate([c[node.input[0]] for c in cls._contexts(model, x)])
        if node.op_type == "XnorPopcountMatMul":
            return (2 * np.rint(v) - 1).astype(np.int64).T, 1
        return np.rint(v).astype(np.int64).T, model.get_tensor_datatype(node.input[0]).bitwidth()


finn_flow = _FinnFlow


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


def torch_preactivations(model, x):
    """Integer pre-activations of every binary layer: its output over (input scale × weight scale).

    The input scale of a QuantLinear is the scale of the QuantIdentity that feeds it (1/127 for the
    8-bit first layer, 1 for ±1 activations); the weight scale is its binary weight quantiser's.
    """
    import torch
    from brevitas.nn import QuantIdentity, QuantLinear

    layers, in_scales, last_act = [], [], None
    for m in model.modules():
        if isinstance(m, QuantIdentity):
            last_act = m
        elif isinstance(m, QuantLinear):
            layers.append(m)
            in_scales.append(float(last_act.act_quant.scale()) if last_act is not None else 1.0)
    outputs: dict[int, torch.Tensor] = {}
    hooks = [
        layer.register_forward_hook(lambda mod, inp, out, i=i: outputs.__setitem__(i, out))
        for i, layer in enumerate(layers)
    ]
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    pre = {}
    for i, layer in enumerate(layers):
        value = outputs[i].numpy() / (in_scales[i] * float(layer.quant_weight().scale))
        pre[i] = np.rint(value).astype(np.int64)
        if not np.allclose(value, pre[i], atol=1e-3):
            raise AssertionError(f"layer {i}: torch pre-activations are not integers (scale mismatch)")
    return pre, logits.numpy(), layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bitcycle demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    import warnings

    import torch

    warnings.filterwarnings("ignore")

    from bitcycle.errors import BitCycleError
    from bitcycle.golden import bitserial_matmul

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
    pre_torch, logits, layers = torch_preactivations(model, xte)
    accuracy = float((logits.argmax(1) == yte).mean())
    print(f"test accuracy: {accuracy:.2%} on {len(yte)} digits")

    _step("2/5 export to QONNX and run FINN's transformations")
    onnx_path = out / "model.qonnx.onnx"
    finn_flow.export_qonnx(model, (1, 64), onnx_path)
    graphs = finn_flow.streamline_to_xnor(onnx_path)
    mvau = finn_flow.to_binary_mvau(graphs[-1][1])
    for name, g in graphs + [("mvau", mvau)]:
        g.save(str(out / f"{name}.onnx"))
    print("graph:", " → ".join(n.op_type for n in mvau.graph.node))

    _step(f"3/5 execute the graphs on {args.images} test images")
    x = xte[: args.images]
    pre_finn = finn_flow.matmul_preactivations(graphs[-1][1], x)
    finn_logits = finn_flow.execute(mvau, x)
    finn_pred_agree = int((finn_logits.argmax(1) == logits[: args.images].argmax(1)).sum())
    print(f"FINN MVAU graph predictions equal torch's on {finn_pred_agree}/{args.images} images")

    # The operands of each binary layer, as the engine sees them: W = sign(latent) [out, in],
    # the input as integers [in, images] at the layer's bit-width (8 for layer 0, 1 = bipolar after).
    checks = []
    for i, layer in enumerate(layers):
        w = np.where(layer.quant_weight().value.detach().numpy() >= 0, 1, -1).astype(np.int8)
        ints, bits = finn_flow.layer_input_ints(graphs[-1][1], i, x)
        checks.append({"layer": i, "w": w, "ints": ints, "bits": bits})

    _step("4/5 golden bit-serial model")
    for c in checks:
        c["golden"] = bitserial_matmul(c["w"], c["ints"], c["bits"]).T  # [images, out]
        print(f"layer {c['layer']}: W {list(c['w'].shape)} × x {list(c['ints'].shape)} at {c['bits']} bit(s)")

    _step("5/5 RTL bitserial_mac in Verilator (cocotb)")
    for c in checks:
        if args.no_rtl:
            c["rtl"] = None
            continue
        c["rtl"] = rtl_matmul(c["w"], c["ints"], c["bits"], out).T

    mismatches = 0
    report = []
    for c in checks:
        i = c["layer"]
        sources = {"torch": pre_torch[i][: args.images], "finn": pre_finn[i], "golden": c["golden"]}
        if c["rtl"] is not None:
            sources["rtl"] = c["rtl"]
        ref = sources["torch"]
        bad = {k: int((v != ref).sum()) for k, v in sources.items()}
        mismatches += sum(bad.values())
        report.append({"layer": i, "bits": c["bits"], "shape": [int(args.images), int(c["w"].shape[0])], "mismatches": bad})
    agreeing = " = ".join(("torch", "FINN execute_onnx", "golden", "RTL")[: 4 if not args.no_rtl else 3])
    total = sum(r["shape"][0] * r["shape"][1] for r in report)
    layer_list = ", ".join(f"layer {r['layer']} at {r['bits']} bit" for r in report)
    line = (
        f"bit-exact: {agreeing} agree on the integer pre-activations of {len(report)} layers "
        f"({layer_list}) for N={args.images} "
        f"test images ({total} values each): {mismatches} mismatches"
    )
    print("\n" + line)
    result = {
        "test_accuracy": accuracy,
        "images": args.images,
        "layers": report,
        "mismatches": mismatches,
        "finn_prediction_agreement": finn_pred_agree,
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    (out / "demo.json").write_text(json.dumps(result, indent=2))
    print(f"results: {out / 'demo.json'}")
    return 1 if mismatches or finn_pred_agree != args.images else 0


def rtl_matmul(binary: np.ndarray, ints: np.ndarray, bits: int, workdir: Path) -> np.ndarray:
    """The RTL MAC row's answer for binary @ ints (Verilator through cocotb's runner)."""
    sys.path.insert(0, str(REPO / "sim"))
    import rtl_runner

    from bitcycle.hwif.rtl import rtl_sources

    with tempfile.TemporaryDirectory(dir=workdir.resolve()) as tmp:
        job, result = Path(tmp) / "job.npz", Path(tmp) / "result.npy"
        np.savez(job, binary=binary, ints=ints, bits=bits)
        t = time.perf_counter()
        rtl_runner.run(
            "bitserial_mac",
            rtl_sources("bitserial_mac"),
            "mac_matmul_job",
            parameters={"SIMD": RTL_SIMD, "MAX_BITS": 16, "ACC_BITS": 32, "OUT_BITS": 32},
            tag="demo",
            seed=0,
            quiet=True,
            extra_env={"BITCYCLE_MAC_JOB": str(job), "BITCYCLE_MAC_JOB_OUT": str(result)},
        )
        print(f"  RTL: {binary.shape[0]}×{ints.shape[1]} dot products of K={binary.shape[1]} at {bits} bit(s) "
              f"in {time.perf_counter() - t:.1f} s")
        return np.load(result)


if __name__ == "__main__":
    sys.exit(main())
