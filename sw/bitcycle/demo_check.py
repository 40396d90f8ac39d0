"""The walking skeleton's agreement check: torch, FINN's execution, the golden model and the
engine RTL on one trained Brevitas MLP (see :mod:`bitcycle.demo` for what is compared and why).

:func:`check_model` takes any trained zoo MLP (binary weights, 8-bit or binary input, BatchNorm +
sign between layers), so tests can hand it awkward models built on purpose (BN γ < 0, γ = 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitcycle.errors import BitCycleError


# -- FINN side: the compile flow's own steps, and a look into each matrix layer ----------------
# The demo's pixels lie on the 8-bit grid x = p / PIXEL_MAX (demo.digits_split): the FINN graph takes
# the integer codes p, as a camera or DMA delivers them, and the compile flow's input annotation holds.
PIXEL_MAX = 254


def pixel_codes(x: np.ndarray) -> np.ndarray:
    """The integer pixel codes (as float32, FINN's tensor type) of images on the 8-bit grid."""
    p = np.rint(x.astype(np.float64) * PIXEL_MAX)
    if not np.allclose(p / PIXEL_MAX, x, atol=1e-6):
        raise BitCycleError(f"the demo's images are not on the grid p/{PIXEL_MAX} (see demo.digits_split)")
    return p.astype(np.float32)


def finn_graphs(model, n_inputs: int, path: Path):
    """Export to QONNX and run ``bitcycle compile``'s steps up to its FINN HW layers (the input
    quantiser as a fabric Thresholding layer, so the graph holds every layer); [(stage, ModelWrapper)]
    after each step, the last the binary-MVAU graph."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile.config import CompileConfig
    from bitcycle.compile.export import export_qonnx, prepare
    from bitcycle.compile.steps import STEP_NAMES, steps_to_run

    export_qonnx(prepare(model, (1, n_inputs), pixel_max=PIXEL_MAX, name="sfc-digits"), path)
    cfg = CompileConfig(pixel_max=PIXEL_MAX, input_quant="fabric")
    graphs, m = [], ModelWrapper(str(path))
    for step in steps_to_run(list(STEP_NAMES), None, "step_to_hw_layers"):
        m = step.fn(m, cfg)
        graphs.append((step.stage, m))
    return graphs


def execute(model, x: np.ndarray, full: bool = False):
    from qonnx.core.onnx_exec import execute_onnx

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    runs = [execute_onnx(model, {iname: x[i : i + 1]}, return_full_exec_context=full) for i in range(len(x))]
    return runs if full else np.concatenate([r[oname] for r in runs])


def matmul_nodes(model):
    return [n for n in model.graph.node if n.op_type in ("MatMul", "XnorPopcountMatMul")]


def finn_layers(model, x: np.ndarray) -> list[dict]:
    """Per matrix layer of the XNOR graph: its integer input [in, N] and bit-width, its integer
    pre-activation [N, out], and its ±1 weights [out, in] as FINN holds them."""
    ctxs = execute(model, x, full=True)
    layers = []
    for node in matmul_nodes(model):
        xin = np.concatenate([c[node.input[0]] for c in ctxs])
        pre = np.concatenate([c[node.output[0]] for c in ctxs])
        w = np.asarray(model.get_initializer(node.input[1]), dtype=np.float64).T  # [out, in]
        if node.op_type == "XnorPopcountMatMul":  # {0,1} codes; popcount of matches → bipolar dot product
            k = model.get_tensor_shape(node.input[0])[-1]
            xin, bits, pre, w = 2 * np.rint(xin) - 1, 1, 2 * pre - k, 2 * w - 1
        else:
            bits = model.get_tensor_datatype(node.input[0]).bitwidth()
        layers.append({"ints": np.rint(xin).astype(np.int64).T, "bits": bits,
                       "pre": np.rint(pre).astype(np.int64), "w": np.rint(w).astype(np.int64)})
    return layers


def row_signs(w_finn: np.ndarray, w_torch: np.ndarray, layer: int) -> np.ndarray:
    """+1 for each row FINN kept, −1 for each it negated (Streamline's rewrite of a BN γ < 0
    channel). Any other difference is a real mismatch and raises."""
    if w_finn.shape != w_torch.shape:
        raise BitCycleError(f"layer {layer}: FINN's weights are {list(w_finn.shape)}, torch's {list(w_torch.shape)}")
    same = np.all(w_finn == w_torch, axis=1)
    negated = np.all(w_finn == -w_torch, axis=1)
    bad = np.nonzero(~(same | negated))[0]
    if len(bad):
        raise BitCycleError(f"layer {layer}: FINN's weight rows {bad[:8].tolist()} are neither torch's nor their "
                            "negation: a FINN pass changed the weights")
    return np.where(same, 1, -1).astype(np.int64)


# -- torch side --------------------------------------------------------------------------------
def torch_layers(model, x: np.ndarray) -> list[dict]:
    """Per QuantLinear: its weights sign(W) [out, in], its input as integers [in, N] (input over the
    scale of the QuantIdentity that feeds it: 1/127 for the 8-bit first layer, 1 for ±1
    activations) and its integer pre-activation [N, out] (output over input × weight scale)."""
    import torch
    from brevitas.nn import QuantIdentity, QuantLinear

    layers, in_scales, last_act = [], [], None
    for m in model.modules():
        if isinstance(m, QuantIdentity):
            last_act = m
        elif isinstance(m, QuantLinear):
            layers.append(m)
            in_scales.append(float(last_act.act_quant.scale()) if last_act is not None else 1.0)
    seen: dict[int, tuple] = {}
    hooks = [layer.register_forward_hook(lambda mod, inp, out, i=i: seen.__setitem__(i, (inp[0], out)))
             for i, layer in enumerate(layers)]
    with torch.no_grad():
        model(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    result = []
    for i, layer in enumerate(layers):
        inp, out = (getattr(t, "value", t).numpy().astype(np.float64) for t in seen[i])
        w_scale = float(layer.quant_weight().scale)
        ints, pre = inp / in_scales[i], out / (in_scales[i] * w_scale)
        for what, v in (("inputs", ints), ("pre-activations", pre)):
            if not np.allclose(v, np.rint(v), atol=1e-3):
                raise BitCycleError(f"layer {i}: torch {what} are not integers (scale mismatch)")
        w = np.where(layer.quant_weight().value.detach().numpy() >= 0, 1, -1).astype(np.int8)
        result.append({"w": w, "ints": np.rint(ints).astype(np.int64).T, "pre": np.rint(pre).astype(np.int64)})
    return result


# -- the engine, through the product's driver --------------------------------------------------
def engine_preactivations(checks: list[dict]) -> list[np.ndarray]:
    """Each layer's sign(W) written into BitCycle's engine (Verilated bitcycle_top, driven by the
    driver's sim backend, exactly as on a board) and its FORWARD job run: [N, out] per layer."""
    from bitcycle.driver import Accelerator, spec_for_model

    widths = [c["w"].shape[1] for c in checks] + [checks[-1]["w"].shape[0]]
    spec = spec_for_model("mlp", dataset="digits", hidden=widths[1:-1])
    if [(ls.in_features, ls.out_features) for ls in spec.layers] != list(zip(widths[:-1], widths[1:])):
        raise BitCycleError(f"the driver's digits MLP does not have the demo's widths {widths}")
    out = []
    with Accelerator("sim", driver_json=spec, timeout=120) as acc:
        for i, c in enumerate(checks):
            acc.write_weights(i, c["w"])
            out.append(acc.forward_layer(i, c["ints"], bits=c["bits"]).T)
    return out


def check_model(model, x: np.ndarray, out: Path, rtl: bool = True, say=print) -> dict:
    """Compare torch, FINN, golden and (with ``rtl``) the engine RTL on images ``x``; a report dict
    whose ``mismatches`` is the total over every comparison."""
    import torch

    from bitcycle.golden import bitserial_matmul

    out = Path(out)
    n = len(x)
    say("2/5 export to QONNX and run the compile flow's steps up to FINN's HW layers")
    graphs = finn_graphs(model, x.shape[1], out / "model.qonnx.onnx")
    for name, g in graphs:
        g.save(str(out / f"{name}.onnx"))
    xnor, mvau = graphs[-2][1], graphs[-1][1]
    codes = pixel_codes(x)
    print("graph:", " → ".join(node.op_type for node in mvau.graph.node))

    say(f"3/5 execute torch and FINN's graphs on {n} test images")
    ref = torch_layers(model, x)
    fin = finn_layers(xnor, codes)
    if len(fin) != len(ref):
        raise BitCycleError(f"FINN's graph has {len(fin)} matrix layers, torch's model {len(ref)}")
    with torch.no_grad():
        torch_pred = model(torch.from_numpy(x)).numpy().argmax(1)
    finn_pred = execute(mvau, codes).argmax(1)
    pred_bad = int((finn_pred != torch_pred).sum())
    print(f"FINN MVAU graph predictions equal torch's on {n - pred_bad}/{n} images")
    checks = []
    for i, (t, f) in enumerate(zip(ref, fin)):
        signs = row_signs(f["w"], t["w"].astype(np.int64), i)
        checks.append({"layer": i, "w": t["w"], "ints": f["ints"], "bits": f["bits"], "signs": signs,
                       "torch_ints": t["ints"], "torch_pre": t["pre"], "finn_pre": f["pre"] * signs})
    flipped = {c["layer"]: int((c["signs"] < 0).sum()) for c in checks}
    print("rows FINN negated (BN γ < 0), undone before comparing pre-activations: "
          + ", ".join(f"layer {i}: {k}" for i, k in flipped.items()))

    say("4/5 golden bit-serial model on each layer's operands")
    for c in checks:
        c["golden"] = bitserial_matmul(c["w"], c["ints"], c["bits"]).T  # [images, out]
        print(f"layer {c['layer']}: W {list(c['w'].shape)} × x {list(c['ints'].shape)} at {c['bits']} bit(s)")

    say("5/5 BitCycle engine RTL (bitcycle_top in Verilator, through the driver's sim backend)")
    if rtl:
        for c, y in zip(checks, engine_preactivations(checks)):
            c["rtl"] = y
    else:
        print("skipped (--no-rtl)")

    report = []
    for c in checks:
        inputs_bad = int((c["ints"] != c["torch_ints"]).sum())
        pre = {"torch": c["torch_pre"], "finn": c["finn_pre"], "golden": c["golden"]}
        if rtl:
            pre["rtl"] = c["rtl"]
        bad = {k: int((v != c["torch_pre"]).sum()) for k, v in pre.items()}
        report.append({"layer": c["layer"], "bits": c["bits"], "shape": [n, int(c["w"].shape[0])],
                       "rows_negated_by_finn": flipped[c["layer"]], "input_mismatches": inputs_bad,
                       "mismatches": bad})
    mismatches = pred_bad + sum(r["input_mismatches"] + sum(r["mismatches"].values()) for r in report)
    sources = " = ".join(("torch", "FINN execute_onnx", "golden", "engine RTL")[: 4 if rtl else 3])
    layer_list = ", ".join(f"layer {r['layer']} at {r['bits']} bit" for r in report)
    print(f"\nbit-exact: {sources} agree for N={n} test images on {len(report)} layers ({layer_list}): "
          f"layer inputs (8-bit image, ±1 activations after BN + sign), integer pre-activations "
          f"(FINN's {sum(flipped.values())} negated rows undone) and predictions: {mismatches} mismatches")
    return {"images": n, "layers": report, "mismatches": mismatches, "prediction_mismatches": pred_bad,
            "compared": ["layer inputs", "pre-activations (FINN's negated rows undone)", "predictions"]}
