"""``bitcycle compile --params DIR/params.npz``: weights trained on the board (``bitcycle run`` /
notebook 01 write ``params.npz`` beside ``driver.json``) become the weights of the inference dataflow.

The model's structure comes from the driver.json (``--driver-json``, a zoo MLP of its layer sizes) or
from a ``bitcycle train`` checkpoint (``--checkpoint``); ``params.npz`` then replaces every latent
weight and BatchNorm state (keys ``fc<i>.weight`` [out, in], ``fc<i>.bn_mean/bn_var/bn_gamma/bn_beta``,
the last layer's per-tensor norm under the same names). The result is an ordinary torch zoo model, so
the compile is checked like any other (every stage bit-exact against torch). A params file that does
not match the structure stops with one line naming the key, its shape and the expected one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from bitcycle.errors import BitCycleError

BN_KEYS = ("bn_mean", "bn_var", "bn_gamma", "bn_beta")


def read_params(path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "params.npz"
    if not p.is_file():
        raise BitCycleError(f"--params {p}: no such file; give the params.npz `bitcycle run --out DIR` wrote (DIR/params.npz)")
    try:
        with np.load(p, allow_pickle=False) as f:
            data = {k: np.asarray(f[k]) for k in f.files}
    except Exception as err:  # noqa: BLE001 - zip/format errors of a bad file
        raise BitCycleError(f"--params {p} is not a params .npz ({type(err).__name__}); give the file `bitcycle run` "
                            "wrote beside its driver.json") from None
    bad = [k for k, v in data.items() if v.dtype.kind not in "fiu" or not np.all(np.isfinite(v))]
    if bad:
        raise BitCycleError(f"--params {p}: {bad[0]} holds non-numeric or non-finite values; retrain or re-save it")
    return data


def model_from_driver_json(spec) -> torch.nn.Module:
    """The zoo MLP the driver trains for ``spec`` (same input quantiser, BN after every hidden layer,
    per-tensor norm on the logits)."""
    from bitcycle.nets.mlp import BinaryMLP

    layers = spec.layers
    for layer in layers[:-1]:
        if layer.norm != "batchnorm" or layer.act != "sign":
            raise BitCycleError(f"driver.json layer {layer.name} has norm={layer.norm}, act={layer.act}; the compile "
                                "flow takes hidden layers with batchnorm + sign")
    if layers[-1].act != "none" or layers[-1].norm not in ("pertensor", "none"):
        raise BitCycleError(f"driver.json's last layer {layers[-1].name} must have act=none and norm pertensor or none")
    bits = spec.input.bits
    if bits < 1 or spec.input.offset != -(2 ** (bits - 1)):
        raise BitCycleError(f"driver.json input quantiser (bits={bits}, offset={spec.input.offset:g}) is not the zoo's "
                            f"(2x − 1 in {bits}-bit fixed point or its sign, offset −2^{bits - 1}); compile it from its checkpoint")
    model: Any = BinaryMLP(hidden=[l.out_features for l in layers[:-1]], in_features=spec.input.features,
                      num_classes=layers[-1].out_features, in_bits=bits)
    model.zoo_name = spec.model
    model.zoo_cfg = {"hidden": [l.out_features for l in layers[:-1]], "in_features": spec.input.features}
    return model.eval()


def _to_torch_scale(vals: dict, step: float, eps: float) -> dict:
    """The driver's first layer sums integer input codes x_int; torch's sums x_int·step (the input
    quantiser's step, 2^-(bits−1)). (z − μ)/√(σ² + ε) is the same function of z_int when
    μ' = μ·step and σ'² + ε = (σ² + ε)·step², so the signs (and FINN's thresholds) are unchanged."""
    out = dict(vals)
    out["bn_mean"] = vals["bn_mean"] * step
    out["bn_var"] = (vals["bn_var"] + eps) * step * step - eps
    return out


def to_driver_scale(mean: np.ndarray, var: np.ndarray, step: float, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`_to_torch_scale`: a torch first-layer BatchNorm's (mean, var) as the driver
    keeps them (on the integer input codes)."""
    mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    return mean / step, (var + eps) / (step * step) - eps


def apply_params(model: torch.nn.Module, params: dict, where: str, input_step: float) -> torch.nn.Module:
    """Copy fc<i>.* (the driver's scales) into the model's binary layers and norms; one line for any
    mismatch. ``input_step``: the torch model's input quantiser step (first-layer BN rescaled by it)."""
    from bitcycle.nets import binary_layers

    layers: list[Any] = binary_layers(model)
    if any(type(l).__name__ != "BinaryLinear" for l in layers):
        raise BitCycleError(f"{where}: params.npz holds fully-connected layers (fc0, fc1, …) but the model has "
                            "convolutions; the driver trains MLPs only")
    norms: list[Any] = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d) or type(m).__name__ == "PerTensorNorm"]
    want = {f"fc{i}.weight" for i in range(len(layers))}
    have = {k for k in params if k.endswith(".weight")}
    if have != want:
        extra, missing = sorted(have - want), sorted(want - have)
        raise BitCycleError(f"{where}: params.npz has weights {sorted(have)} but the model has {len(layers)} layers "
                            f"({'missing ' + ', '.join(missing) if missing else 'extra ' + ', '.join(extra)}); "
                            "give the params of this driver.json / checkpoint")
    with torch.no_grad():
        for i, layer in enumerate(layers):
            w = params[f"fc{i}.weight"]
            if tuple(w.shape) != tuple(layer.weight.shape):
                raise BitCycleError(f"{where}: fc{i}.weight has shape {list(w.shape)}, the model's layer {i} is "
                                    f"{list(layer.weight.shape)} [out, in]; give the params of this model")
            layer.weight.copy_(torch.from_numpy(w.astype(np.float32)))
            if i >= len(norms):
                continue
            norm, n = norms[i], norms[i].running_mean.numel()
            present = [k for k in BN_KEYS if f"fc{i}.{k}" in params]
            if not present:
                continue
            if len(present) != len(BN_KEYS):
                raise BitCycleError(f"{where}: fc{i} has {', '.join(present)} but not all of {', '.join(BN_KEYS)}")
            vals = {}
            for key in BN_KEYS:
                v = params[f"fc{i}.{key}"].reshape(-1).astype(np.float64)
                if v.size != n:
                    raise BitCycleError(f"{where}: fc{i}.{key} has {v.size} values, the model's norm after layer {i} "
                                        f"has {n}; give the params of this model")
                vals[key] = v
            if np.any(vals["bn_var"] < 0):
                raise BitCycleError(f"{where}: fc{i}.bn_var has negative variances; the file is corrupt")
            if i == 0:
                vals = _to_torch_scale(vals, input_step, float(norm.eps))
            for key, target in zip(BN_KEYS, (norm.running_mean, norm.running_var, norm.weight, norm.bias)):
                target.copy_(torch.from_numpy(vals[key].astype(np.float32)))
    return model.eval()


def load_with_params(args) -> tuple[torch.nn.Module, str]:
    """(model, name) for --driver-json [--params] or --checkpoint --params."""
    from bitcycle.hwif import driver_json as DJ

    if args.driver_json:
        spec = DJ.load(args.driver_json)
        model = model_from_driver_json(spec)
        path = args.params or spec.params_path()
        if path is None:
            raise BitCycleError(f"--driver-json {args.driver_json} names no params file; give --params DIR/params.npz")
        name = spec.model
    else:
        from bitcycle.compile.commands import load_source_model

        model, name = load_source_model(args)
        path = args.params
    params = read_params(path)
    return apply_params(model, params, f"--params {path}", input_step(model)), name


def input_step(model: Any) -> float:
    """Step of the zoo model's input quantiser (2x − 1 in b-bit fixed point: 2^-(b−1))."""
    from brevitas.nn import QuantIdentity

    q: Any = next((m for m in model.modules() if isinstance(m, QuantIdentity)), None)
    try:
        return float(q.act_quant.scale())
    except Exception:  # noqa: BLE001 - not a Brevitas input quantiser
        raise BitCycleError(f"cannot read the input quantiser step of {type(model).__name__}; --params needs a zoo "
                            "model (bitcycle.nets) whose first quantiser is its input QuantIdentity") from None
