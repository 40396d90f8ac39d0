"""Export: a trained checkpoint (or a Brevitas module) → QONNX with integer inputs and outputs.

Two changes make the exported graph exactly what the hardware computes:

* **integer input** — the graph input is the raw pixel code ``0..pixel_max`` (UINT8 for images),
  and the model's own ``x / pixel_max`` runs inside the graph. FINN streamlining then folds the
  scaling into the first thresholds, and ``RoundAndClipThresholds`` makes them exact integers,
  so the first layer needs no float arithmetic (FINN's CNV flow does the same with ``ToTensor``).
* **integer logits** — a trailing ``PerTensorNorm`` (one affine for the whole tensor) is cut off
  and returned as ``(scale, bias)``; the graph then ends at the last binary layer, whose output
  is an exact integer. Its affine is applied on the host (it is monotone when ``scale > 0``, so
  argmax needs none of it).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bitcycle.errors import BitCycleError

# keys a `bitcycle train` checkpoint may use (the trainer and the compile flow agree on these)
_STATE_KEYS = ("state_dict", "model_state", "model_state_dict", "model")
_NAME_KEYS = ("model_name", "model", "name")
_CFG_KEYS = ("model_cfg", "config", "cfg")


@dataclass
class ExportedModel:
    """A torch model prepared for export plus what the host needs around it."""

    module: torch.nn.Module          # pixel codes in → integer logits out
    name: str
    input_shape: tuple[int, ...]     # one image, batch 1, e.g. (1, 1, 28, 28)
    pixel_max: float                 # raw input code range 0..pixel_max
    head_scale: float = 1.0          # logits = head_scale · integer_out + head_bias
    head_bias: float = 0.0
    meta: dict = field(default_factory=dict)

    def integer_outputs(self, pixels: np.ndarray, batch: int = 256) -> np.ndarray:
        """The torch model's integer outputs for raw pixel codes [N, ...] (float64, exact ints)."""
        outs = []
        with torch.no_grad():
            for i in range(0, len(pixels), batch):
                x = torch.from_numpy(np.asarray(pixels[i:i + batch], dtype=np.float32))
                outs.append(self.module(x).double().numpy())
        out = np.concatenate(outs)
        if not np.array_equal(out, np.round(out)):
            raise BitCycleError(
                f"model {self.name!r} does not give integer outputs after cutting its head: the last "
                "layer must be a binary (or integer-weight) layer with constant scale 1; use the zoo's "
                "BinaryLinear as the last layer")
        return out

    def save_qonnx(self, path: str | Path) -> Path:
        """The QONNX file of this model (Brevitas export + qonnx cleanup)."""
        return export_qonnx(self, path)


class _PixelInput(torch.nn.Module):
    """x_codes / pixel_max → the model, with the trailing per-tensor affine removed."""

    def __init__(self, body: torch.nn.Module, pixel_max: float):
        super().__init__()
        self.body = body
        self.register_buffer("inv", torch.tensor([1.0 / pixel_max], dtype=torch.float32))

    def forward(self, x):
        return self.body(x * self.inv)


def _cut_head(model: torch.nn.Module) -> tuple[torch.nn.Module, float, float]:
    """Replace a trailing PerTensorNorm (FINN's TensorNorm semantics) by Identity; return its affine."""
    model = copy.deepcopy(model).eval()
    last_name, last = None, None
    for name, mod in model.named_modules():
        if len(list(mod.children())) == 0 and not isinstance(mod, torch.nn.Identity):
            last_name, last = name, mod
    if last is None or type(last).__name__ not in ("PerTensorNorm", "TensorNorm"):
        return model, 1.0, 0.0
    last = last.eval()
    with torch.no_grad():
        var, mean = float(last.running_var.reshape(-1)[0]), float(last.running_mean.reshape(-1)[0])
        gamma, beta = float(last.weight.reshape(-1)[0]), float(last.bias.reshape(-1)[0])
    scale = gamma / math.sqrt(var + float(last.eps))
    parent = model
    *path, leaf = last_name.split(".")
    for p in path:
        parent = getattr(parent, p) if not p.isdigit() else parent[int(p)]
    if leaf.isdigit():
        parent[int(leaf)] = torch.nn.Identity()
    else:
        setattr(parent, leaf, torch.nn.Identity())
    return model, scale, beta - mean * scale


def prepare(model: torch.nn.Module, input_shape, pixel_max: float = 255.0, name: str | None = None) -> ExportedModel:
    """Wrap a Brevitas model (inputs in [0, 1]) for export with integer input codes and logits."""
    body, scale, bias = _cut_head(model)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    wrapped = _PixelInput(body, float(pixel_max)).eval()
    return ExportedModel(module=wrapped, name=name or getattr(model, "zoo_name", type(model).__name__.lower()),
                         input_shape=tuple(int(d) for d in input_shape), pixel_max=float(pixel_max),
                         head_scale=scale, head_bias=bias,
                         meta={"zoo_cfg": dict(getattr(model, "zoo_cfg", {}) or {})})


def export_qonnx(exported: ExportedModel, path: str | Path) -> Path:
    """Brevitas → QONNX file, then qonnx's cleanup (shape inference, constant folding, names)."""
    import logging
    import os

    from brevitas.export import export_qonnx as brevitas_export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(exported.input_shape, dtype=torch.float32)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with open(os.devnull, "w") as devnull:
        import contextlib

        with contextlib.redirect_stdout(devnull):
            try:
                brevitas_export_qonnx(exported.module, input_t=x, export_path=str(path))
            except Exception as err:  # Brevitas raises many types; name the model and the cause
                raise BitCycleError(
                    f"Brevitas could not export {exported.name!r} to QONNX ({type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}); use the zoo's Brevitas layers") from None
    model = cleanup_model(ModelWrapper(str(path)))
    model.save(str(path))
    return path


def load_checkpoint(path: str | Path) -> torch.nn.Module:
    """A `bitcycle train` checkpoint → the zoo model with its trained weights, in eval mode."""
    from bitcycle.nets import get_model

    path = Path(path)
    if not path.is_file():
        raise BitCycleError(f"checkpoint {path} not found; train one with `bitcycle train --out DIR` "
                            "(it writes DIR/checkpoint.pt) or give the right path")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise BitCycleError(f"{path} is not a torch checkpoint ({type(err).__name__}); give a file written by `bitcycle train`") from None
    if not isinstance(ckpt, dict):
        raise BitCycleError(f"{path}: expected a checkpoint dict from `bitcycle train`, got {type(ckpt).__name__}")
    state = next((ckpt[k] for k in _STATE_KEYS if isinstance(ckpt.get(k), dict)), None)
    name = next((ckpt[k] for k in _NAME_KEYS if isinstance(ckpt.get(k), str)), None)
    cfg = next((ckpt[k] for k in _CFG_KEYS if isinstance(ckpt.get(k), dict)), {})
    if state is None or name is None:
        raise BitCycleError(f"{path}: checkpoint has no model name and state dict (keys: {sorted(ckpt)}); "
                            "give a checkpoint written by `bitcycle train`")
    model = get_model(name, **cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise BitCycleError(f"{path}: weights do not match model {name!r} with config {cfg} "
                            f"(missing {missing[:3]}, unexpected {list(unexpected)[:3]}); was it trained with another config?")
    return model.eval()


def input_spec_for(model: torch.nn.Module) -> tuple[tuple[int, ...], float]:
    """(input_shape, pixel_max) of a zoo model from its attributes."""
    if hasattr(model, "input_size") and hasattr(model, "in_channels"):
        return (1, int(model.in_channels), int(model.input_size), int(model.input_size)), 255.0
    if hasattr(model, "in_features"):
        feats = int(model.in_features)
        side = int(round(math.sqrt(feats)))
        pixel_max = 16.0 if feats == 64 else 255.0  # sklearn digits codes are 0..16
        return ((1, 1, side, side) if side * side == feats else (1, feats)), pixel_max
    raise BitCycleError(f"cannot tell the input shape of {type(model).__name__}; pass input_shape=")
