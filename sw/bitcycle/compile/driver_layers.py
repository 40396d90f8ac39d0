"""driver.json's layers and params.npz of a compiled zoo CNN, read off its torch modules.

An MLP's layers are read off the compiled graph (``project.driver_spec``). A CNN's conv geometry
(kernel, stride, padding, the input's H×W, the max-pool after it) is what the driver needs to lower
each conv to one engine product by im2col (``driver/convlower.py``); the torch model states it
directly, and the compiled graph's engine layers must then agree with it: each product's MW×MH is
the layer's in_channels·k·k × out_channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bitcycle.errors import BitCycleError


def _square(value, what: str, where: str) -> int:
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(set(vals)) != 1:
        raise BitCycleError(f"{where}: {what}={vals} is not square; driver.json's conv layers take one {what}")
    return int(vals[0])


def torch_layer_specs(torch_model, input_shape) -> list:
    """LayerSpecs (conv0…, fc0…) of a zoo model's engine layers in module order; ``input_shape``
    the per-sample (C, H, W). The last layer has no norm and no activation (its head runs on the host)."""
    import torch

    from bitcycle.hwif import convshapes
    from bitcycle.hwif.driver_json import LayerSpec
    from bitcycle.nets.layers import BinaryConv2d, BinaryLinear

    layers: list = []
    shape = tuple(int(d) for d in input_shape)
    n_conv = n_fc = 0
    for m in torch_model.modules():
        if isinstance(m, BinaryConv2d):
            where = f"conv{n_conv}"
            if len(shape) != 3:
                raise BitCycleError(f"{where}: a convolution after a dense layer cannot be described in driver.json")
            k = _square(m.kernel_size, "kernel", where)
            conv = {"in_channels": shape[0], "in_h": shape[1], "in_w": shape[2], "kernel": k,
                    "stride": _square(m.stride, "stride", where), "padding": _square(m.padding, "padding", where)}
            layers.append(LayerSpec(name=where, in_features=shape[0] * k * k, out_features=m.out_channels,
                                    conv=conv))
            n_conv += 1
        elif isinstance(m, BinaryLinear):
            features = int(np.prod(shape))
            layers.append(LayerSpec(name=f"fc{n_fc}", in_features=features, out_features=m.out_features))
            n_fc += 1
        elif isinstance(m, torch.nn.MaxPool2d):
            if not layers or layers[-1].conv is None or layers[-1].pool is not None:
                raise BitCycleError("a max-pool that does not follow a conv layer's activation cannot be described "
                                    "in driver.json")
            k = _square(m.kernel_size, "kernel", "max-pool")
            stride = _square(m.stride if m.stride is not None else k, "stride", "max-pool")
            if _square(m.padding, "padding", "max-pool") or m.ceil_mode or _square(m.dilation, "dilation", "max-pool") != 1:
                raise BitCycleError("driver.json's max-pool takes no padding, dilation or ceil_mode")
            layers[-1].pool = {"kernel": k, "stride": stride}
        else:
            continue
        shape = convshapes.output_shape(layers[-1])
    if layers:
        layers[-1].norm, layers[-1].act = "none", "none"
    return layers


def check_against_graph(layers: list, engine_layers: list) -> str | None:
    """None when the compiled graph's engine layers (node, instance) are exactly these products, in
    order; else the first difference, as a sentence."""
    if len(layers) != len(engine_layers):
        return f"the torch model has {len(layers)} engine layers, the compiled graph {len(engine_layers)}"
    for spec, (_node, inst) in zip(layers, engine_layers):
        mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
        if (spec.in_features, spec.out_features) != (mw, mh):
            return (f"{spec.name} is {spec.in_features}×{spec.out_features} in the torch model but its compiled "
                    f"product is MW×MH = {mw}×{mh}")
        spec.in_bits = int(inst.get_nodeattr("bits"))
    return None


def write_params(torch_model, layers: list, path: Path) -> None:
    """``<layer>.weight`` (latent float, [out, in]: a conv's [out, C·k·k] in im2col's C, kh, kw
    order) and ``<layer>.bn_*`` of every layer with a BatchNorm, the first on the integer input codes
    as the driver keeps it."""
    import torch

    from bitcycle.compile.params_in import input_step, to_driver_scale
    from bitcycle.nets import binary_layers

    mods: list[Any] = binary_layers(torch_model)
    bns: list[Any] = [m for m in torch_model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    if len(mods) != len(layers) or len(bns) > len(layers):
        raise BitCycleError(f"params.npz: {len(mods)} binary layers and {len(bns)} BatchNorms for {len(layers)} "
                            "driver.json layers")
    out = {}
    for i, (spec, layer) in enumerate(zip(layers, mods)):
        out[f"{spec.name}.weight"] = layer.weight.detach().numpy().reshape(spec.out_features, -1).astype(np.float32)
        if i < len(bns):
            bn = bns[i]
            mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
            if i == 0:  # the driver's first layer sums integer input codes, torch's sums codes · step
                mean, var = to_driver_scale(mean, var, input_step(torch_model), float(bn.eps))
            out[f"{spec.name}.bn_mean"] = np.asarray(mean, dtype=np.float32)
            out[f"{spec.name}.bn_var"] = np.asarray(var, dtype=np.float32)
            out[f"{spec.name}.bn_gamma"] = bn.weight.detach().numpy().astype(np.float32)
            out[f"{spec.name}.bn_beta"] = bn.bias.detach().numpy().astype(np.float32)
    np.savez(path, **out)  # type: ignore[arg-type]
