"""Memory-efficient training mode for zoo models, and measured training memory.

``set_memory_efficient(model)`` switches a zoo model (``bitcycle.nets``) to the reduced saved
state of ``bitcycle.quant.memory``, per module instance and reversibly (``enabled=False``), so
parameters, buffers and checkpoints are the same in both modes:

=====================================  ============================  ================================
module                                 standard autograd saves       memory-efficient saves
=====================================  ============================  ================================
BinaryLinear / BinaryConv2d (matmul)   float input (±1 or 8-bit)     ±1 input packed 1 bit/value,
                                                                     8-bit input as int8 codes
sign activation (QuantIdentity, 1 bit) float pre-activation + masks  clamp mask, 1 bit/value
MaxPool2d on ±1 data                   int64 argmax indices          input signs, 1 bit/value
BatchNorm1d/2d after a binary layer    float input                   int8/int16 input + mean, 1/σ
AvgPool2d (ResNet shortcut)            float input                   nothing (backward needs shapes)
=====================================  ============================  ================================

Documented fallback: a BatchNorm or max-pool whose input is not integer-valued / not ±1 in some
step runs in standard mode for that step and is listed in ``model.memory_fallbacks`` (reported by
``bitcycle bench memory``); a binary layer whose input is neither ±1 nor on the 8-bit input grid
raises ``BitCycleError`` naming the layer. Switch the mode off before QONNX export.

``measure_saved_bytes`` measures — with ``torch.autograd.graph.saved_tensors_hooks`` — every
tensor autograd keeps for backward during one training step, attributed to the model's layers,
each storage counted once, parameters excluded (they live anyway). ``measure_step`` also records the
peak resident memory of a process that runs that one step (``bitcycle bench memory`` runs each
configuration in its own process so the peaks do not mix).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from collections import OrderedDict

import torch

from bitcycle.errors import BitCycleError
from bitcycle.quant.memory import (
    int_batch_norm,
    integer_codes,
    packed_max_pool2d,
    packed_operand_product,
    packed_sign_act,
    shape_only_avg_pool2d,
    _is_bipolar,
)

EFFICIENT_ATTR = "_bitcycle_memory_efficient"


# ----------------------------------------------------------------------------- the mode switch
def _binary_act_scale(module) -> float | None:
    """Scale of a 1-bit Brevitas QuantIdentity (None if ``module`` is not one)."""
    from brevitas.nn import QuantIdentity

    if not isinstance(module, QuantIdentity) or getattr(module, "return_quant_tensor", False):
        return None
    quant = module.act_quant
    if not quant.is_quant_enabled or int(quant.bit_width()) != 1:
        return None
    return float(quant.scale())


def _input_scale(model) -> float | None:
    """Step of the model's 8-bit input quantiser (the first layer's input grid)."""
    from brevitas.nn import QuantIdentity

    for m in model.modules():
        if isinstance(m, QuantIdentity) and m.act_quant.is_quant_enabled and int(m.act_quant.bit_width()) > 1:
            return float(m.act_quant.scale())
    return None


def _linear_matmul(layer, name, input_scale, x, w, row_grad=None):
    return packed_operand_product(x, w, None, input_scale=input_scale, where=name, row_grad=row_grad)


def _conv_matmul(layer, name, input_scale, x, w, row_grad=None):
    if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
        raise BitCycleError(f"{name}: memory-efficient mode supports zero numeric padding only; train it in standard mode")
    return packed_operand_product(x, w, layer.conv_args(), input_scale=input_scale, where=name, row_grad=row_grad)


def _sign_forward(module, x):
    x = x.value if hasattr(x, "value") else x
    return packed_sign_act(x)


def _bn_forward(model, name, input_scale, bn, y):
    if bn.training and torch.is_grad_enabled():
        # A binary layer's output is an integer; the first layer's is one on the 8-bit input grid.
        found = integer_codes(y, (1.0, input_scale))
        if found is not None:
            return int_batch_norm(y, bn, name, step=found[1], codes=found[0])
        model.memory_fallbacks.add(name)
    return type(bn).forward(bn, y)


def _pool_forward(model, name, pool, x):
    with torch.no_grad():
        bipolar = _is_bipolar(x)
    if torch.is_grad_enabled() and x.requires_grad and bipolar:
        return packed_max_pool2d(x, pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)
    if torch.is_grad_enabled() and x.requires_grad:
        model.memory_fallbacks.add(name)
    return type(pool).forward(pool, x)


def _avg_pool_forward(pool, x):
    if torch.is_grad_enabled() and x.requires_grad:
        return shape_only_avg_pool2d(x, pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode,
                                     pool.count_include_pad, pool.divisor_override)
    return type(pool).forward(pool, x)


def set_memory_efficient(model: torch.nn.Module, enabled: bool = True) -> list[str]:
    """Switch ``model`` (a zoo model) to/from memory-efficient training; returns the switched modules.

    Raises ``BitCycleError`` if the model has no binary layer the mode applies to.
    """
    from bitcycle.nets.layers import BinaryConv2d, BinaryLinear

    switched = []
    input_scale = _input_scale(model)
    for name, m in model.named_modules():
        if getattr(m, EFFICIENT_ATTR, False):  # restore the class behaviour first
            for attr in ("matmul", "forward"):
                m.__dict__.pop(attr, None)
            setattr(m, EFFICIENT_ATTR, False)
        if not enabled:
            continue
        if isinstance(m, BinaryLinear):
            m.matmul = functools.partial(_linear_matmul, m, name, input_scale)
        elif isinstance(m, BinaryConv2d):
            m.matmul = functools.partial(_conv_matmul, m, name, input_scale)
        elif _binary_act_scale(m) == 1.0:
            m.forward = functools.partial(_sign_forward, m)
        elif type(m) in (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d):
            m.forward = functools.partial(_bn_forward, model, name, input_scale, m)
        elif type(m) is torch.nn.MaxPool2d and not m.return_indices:
            m.forward = functools.partial(_pool_forward, model, name, m)
        elif type(m) is torch.nn.AvgPool2d:
            m.forward = functools.partial(_avg_pool_forward, m)
        else:
            continue
        setattr(m, EFFICIENT_ATTR, True)
        switched.append(name)
    model.memory_fallbacks = set()
    if enabled and not any(isinstance(m, (BinaryLinear, BinaryConv2d)) for m in model.modules()):
        raise BitCycleError(f"{type(model).__name__} has no BinaryLinear/BinaryConv2d layer: memory-efficient mode "
                            f"applies to the zoo's binary nets (bitcycle.nets) only")
    return switched


# ----------------------------------------------------------------------------- measurement
def _layer_names(model: torch.nn.Module) -> dict[int, str]:
    """id(module) → name for the modules bytes are attributed to: the children of containers."""
    containers = (torch.nn.ModuleList, torch.nn.Sequential, torch.nn.ModuleDict)
    names = {}
    for parent_name, parent in model.named_modules():
        if parent is not model and not isinstance(parent, containers):
            continue
        for child_name, child in parent.named_children():
            if isinstance(child, containers):
                continue
            names[id(child)] = f"{parent_name}.{child_name}" if parent_name else child_name
    return names


class _Saved:
    """What the pack hook hands autograd: only graph nodes hold it, so a weak reference to it
    tells whether the saved tensor is still kept for backward (temporaries' nodes die early)."""

    __slots__ = ("tensor", "layer", "__weakref__")

    def __init__(self, tensor, layer):
        self.tensor, self.layer = tensor, layer


def measure_saved_bytes(model: torch.nn.Module, forward) -> "OrderedDict[str, dict]":
    """Run ``loss = forward()`` under ``saved_tensors_hooks``, then ``loss.backward()``; return, per
    layer in forward order, ``{"bytes", "tensors", "kinds": {dtype: bytes}}`` of the tensors autograd
    still keeps for backward when the forward pass ends.

    Each storage counts once (for the first layer that saved it); parameters are excluded (they live
    anyway); tensors saved by temporaries whose graph is already freed are not counted."""
    import weakref

    names = _layer_names(model)
    stack: list[str] = []
    records: list = []
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pre(module, args):
        stack.append(names[id(module)])

    def post(module, args, out):
        stack.pop()

    handles = []
    for m in model.modules():
        if id(m) in names:
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))

    def pack(t):
        saved = _Saved(t, stack[-1] if stack else "(model)")
        records.append(weakref.ref(saved))
        return saved

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda saved: saved.tensor):
            loss = forward()
    finally:
        for h in handles:
            h.remove()
    per_layer: "OrderedDict[str, dict]" = OrderedDict()
    seen: set[int] = set()
    for ref in records:
        saved = ref()
        if saved is None:
            continue
        storage = saved.tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in seen or ptr in params:
            continue
        seen.add(ptr)
        rec = per_layer.setdefault(saved.layer, {"bytes": 0, "tensors": 0, "kinds": {}})
        rec["bytes"] += storage.nbytes()
        rec["tensors"] += 1
        kind = str(saved.tensor.dtype).replace("torch.", "")
        rec["kinds"][kind] = rec["kinds"].get(kind, 0) + storage.nbytes()
    loss.backward()
    return per_layer


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _example_batch(model_name: str, batch: int, cfg: dict, seed: int):
    g = torch.Generator().manual_seed(seed)
    if model_name in ("cnv", "resnet"):
        size, ch = int(cfg.get("input_size", 28)), int(cfg.get("in_channels", 1))
        x = torch.rand(batch, ch, size, size, generator=g)
    else:
        x = torch.rand(batch, int(cfg.get("in_features", 784)), generator=g)
    y = torch.randint(0, int(cfg.get("num_classes", 10)), (batch,), generator=g)
    return x, y


ZOO_DEFAULTS = {
    # Fashion-MNIST shapes: 28×28, one channel
    "tfc": {}, "sfc": {}, "lfc": {},
    "cnv": {"input_size": 28, "in_channels": 1},
    "resnet": {"input_size": 28, "in_channels": 1},
}


def measure_step(model_name: str, batch: int, efficient: bool, cfg: dict | None = None, seed: int = 0,
                 grad_bits: int = 8) -> dict:
    """One training step (forward, loss, backward, Adam step) of a fresh zoo model in this process:
    saved-for-backward bytes per layer and the peak resident memory before/after the step."""
    from bitcycle.nets import get_model
    from bitcycle.quant.grad import seed_grad_quant, set_grad_bits

    torch.manual_seed(seed)
    cfg = dict(ZOO_DEFAULTS.get(model_name, {}) if cfg is None else cfg)
    model = get_model(model_name, **cfg)
    model.train()
    set_grad_bits(model, grad_bits)
    seed_grad_quant(model, seed)
    if efficient:
        set_memory_efficient(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = _example_batch(model_name, batch, cfg, seed)
    rss_before = _peak_rss_bytes()
    cpu0, wall0 = time.process_time(), time.perf_counter()

    per_layer = measure_saved_bytes(model, lambda: torch.nn.functional.cross_entropy(model(x), y))
    opt.step()
    opt.zero_grad(set_to_none=True)
    return {
        "model": model_name, "cfg": cfg, "batch": batch, "mode": "efficient" if efficient else "standard",
        "grad_bits": grad_bits,
        "saved_bytes": sum(r["bytes"] for r in per_layer.values()),
        "per_layer": [{"layer": k, **v} for k, v in per_layer.items()],
        "peak_rss_before_step": rss_before, "peak_rss_after_step": _peak_rss_bytes(),
        "step_peak_rss_increase": _peak_rss_bytes() - rss_before,
        "fallbacks": sorted(getattr(model, "memory_fallbacks", ())),
        "step_wall_s": time.perf_counter() - wall0, "step_cpu_s": time.process_time() - cpu0,
    }


def measure_step_subprocess(model_name: str, batch: int, efficient: bool, cfg: dict | None = None, seed: int = 0,
                            grad_bits: int = 8) -> dict:
    """``measure_step`` in a fresh Python process (so its peak RSS is that configuration's own)."""
    spec = json.dumps({"model": model_name, "batch": batch, "efficient": efficient, "cfg": cfg, "seed": seed,
                       "grad_bits": grad_bits})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "bitcycle.train.memory", "--worker", spec],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BitCycleError(f"memory measurement of {model_name} batch {batch} failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(standard: dict, efficient: dict) -> dict:
    """The bench JSON for one model and batch: totals, ratio, per layer side by side."""
    eff = {r["layer"]: r for r in efficient["per_layer"]}
    std = {r["layer"]: r for r in standard["per_layer"]}
    order = [r["layer"] for r in standard["per_layer"]] + [k for k in eff if k not in std]
    rows = []
    for name in order:
        s, e = std.get(name, {"bytes": 0}), eff.get(name, {"bytes": 0})
        rows.append({"layer": name, "standard_bytes": s["bytes"], "efficient_bytes": e["bytes"],
                     "standard_kinds": s.get("kinds", {}), "efficient_kinds": e.get("kinds", {})})
    total_s, total_e = standard["saved_bytes"], efficient["saved_bytes"]
    return {
        "model": standard["model"], "cfg": standard["cfg"], "batch": standard["batch"], "grad_bits": standard["grad_bits"],
        "standard_bytes": total_s, "efficient_bytes": total_e,
        "ratio": total_s / total_e if total_e else None,
        "standard_step_peak_rss_increase": standard["step_peak_rss_increase"],
        "efficient_step_peak_rss_increase": efficient["step_peak_rss_increase"],
        "standard_peak_rss": standard["peak_rss_after_step"], "efficient_peak_rss": efficient["peak_rss_after_step"],
        "fallbacks": efficient["fallbacks"],
        "standard_step_wall_s": standard["step_wall_s"], "standard_step_cpu_s": standard["step_cpu_s"],
        "efficient_step_wall_s": efficient["step_wall_s"], "efficient_step_cpu_s": efficient["step_cpu_s"],
        "per_layer": rows,
    }


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="internal: one memory measurement, printed as JSON")
    parser.add_argument("--worker", required=True, help="JSON spec")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = json.loads(args.worker)
    result = measure_step(spec["model"], int(spec["batch"]), bool(spec["efficient"]), spec.get("cfg"),
                          int(spec.get("seed", 0)), int(spec.get("grad_bits", 8)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main())


def acc_bits_table(model: torch.nn.Module, sample_shape, batch: int, grad_bits: int) -> list[dict]:
    """Minimal accumulator widths (``bitcycle.golden.accwidth``) of each binary layer's forward,
    backward-data and backward-weight passes at ``batch`` and ``grad_bits``, from one probe forward."""
    from bitcycle.golden.accwidth import training_acc_bits
    from bitcycle.nets.layers import BinaryConv2d, BinaryLinear

    rows, hooks = [], []

    def probe(name, module, args, out):
        x = args[0].value if hasattr(args[0], "value") else args[0]
        in_bits = 1 if _is_bipolar(x) else int(_input_bits(model))
        if isinstance(module, BinaryConv2d):
            kh, kw = module.kernel_size
            k_fwd = module.in_channels // module.groups * kh * kw
            k_bd = module.out_channels // module.groups * kh * kw
            k_bw = batch * out.shape[-1] * out.shape[-2]
        else:
            k_fwd, k_bd, k_bw = module.in_features, module.out_features, batch
        rows.append({"layer": name, "K_forward": k_fwd, "K_backward_data": k_bd, "K_backward_weight": k_bw,
                     "input_bits": in_bits, "grad_bits": grad_bits,
                     **training_acc_bits(k_fwd, k_bd, k_bw, in_bits, grad_bits)})

    for name, m in model.named_modules():
        if isinstance(m, (BinaryLinear, BinaryConv2d)):
            hooks.append(m.register_forward_hook(functools.partial(probe, name)))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.rand(1, *sample_shape))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return rows


def _input_bits(model) -> int:
    from brevitas.nn import QuantIdentity

    for m in model.modules():
        if isinstance(m, QuantIdentity) and m.act_quant.is_quant_enabled and int(m.act_quant.bit_width()) > 1:
            return int(m.act_quant.bit_width())
    raise BitCycleError(f"{type(model).__name__}: a binary layer's input is neither ±1 nor from an integer input quantiser")
