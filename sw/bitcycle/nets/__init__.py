"""The model zoo: binary (W1A1) Brevitas nets with the gradient quantiser in every binary layer.

``get_model(name, **cfg)`` builds one; ``MODELS`` lists the names. Configs of trained models and
benchmarks live in ``models/*.toml`` (``load_model_config``).

=========  ==================================================================  ===============
name       structure                                                           cfg (defaults)
=========  ==================================================================  ===============
tfc        MLP 3×64 (FINN TFC)                                                 in_features=784, width, depth
sfc        MLP 3×256 (FINN SFC)                                                num_classes=10, dropout=0
lfc        MLP 3×1024 (FINN LFC)                                               in_bits=8 (1: sign), last_weight_bits=1
cnv        CNN, FINN CNV (32×32) or five-conv variant (28×28)                  input_size, in_channels,
                                                                               channels, fc, width_mult
resnet     small binary ResNet (3 stages × 2 blocks, 16-32-64)                 input_size, in_channels,
                                                                               stages, blocks_per_stage
=========  ==================================================================  ===============
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from bitcycle.errors import BitCycleError
from bitcycle.nets.cnv import BinaryCNV
from bitcycle.nets.layers import BinaryConv2d, BinaryLinear, PerTensorNorm
from bitcycle.nets.mlp import BinaryMLP
from bitcycle.nets.resnet import BinaryResNet

_MLP_WIDTH = {"tfc": 64, "sfc": 256, "lfc": 1024}
MODELS = ("tfc", "sfc", "lfc", "cnv", "resnet")


def _mlp(name):
    def build(width: int | None = None, depth: int = 3, **cfg):
        hidden = cfg.pop("hidden", None)
        if hidden is None:
            hidden = (int(width or _MLP_WIDTH[name]),) * int(depth)
        return BinaryMLP(hidden=tuple(hidden), **cfg)

    build.__signature_source__ = BinaryMLP
    return build


_BUILDERS = {"tfc": _mlp("tfc"), "sfc": _mlp("sfc"), "lfc": _mlp("lfc"), "cnv": BinaryCNV, "resnet": BinaryResNet}


def _accepted(name) -> set[str]:
    b = _BUILDERS[name]
    target = getattr(b, "__signature_source__", None)
    keys = set(inspect.signature(target.__init__ if target else b.__init__).parameters) - {"self"}
    if target:
        keys |= {"width", "depth", "hidden"}
    return keys


def get_model(name: str, **cfg) -> torch.nn.Module:
    """Build zoo model ``name`` with config overrides (see the module docstring)."""
    if name not in _BUILDERS:
        raise BitCycleError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    unknown = sorted(set(cfg) - _accepted(name))
    if unknown:
        raise BitCycleError(f"model {name!r} has no option {', '.join(unknown)}; it takes {', '.join(sorted(_accepted(name)))}")
    model = _BUILDERS[name](**cfg)
    model.zoo_name = name
    model.zoo_cfg = dict(cfg)
    return model


def load_model_config(path: str | Path) -> tuple[str, dict]:
    """Read ``models/NAME.toml``: ``model = "lfc"`` plus a ``[config]`` table of get_model options."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise BitCycleError(f"model config {p} not found; give a zoo name ({', '.join(MODELS)}) or an existing .toml file")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as err:
        raise BitCycleError(f"model config {p}: invalid TOML ({err})") from None
    if "model" not in data:
        raise BitCycleError(f"model config {p} has no `model = \"NAME\"` line")
    return data["model"], dict(data.get("config", {}))


def binary_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The engine's layers (BinaryLinear / BinaryConv2d) in module order."""
    return [m for m in model.modules() if isinstance(m, (BinaryLinear, BinaryConv2d))]


def clip_latent_weights(model: torch.nn.Module, bound: float = 1.0) -> None:
    """Clamp the latent real weights to [−bound, bound] after each optimiser step (BNN practice)."""
    with torch.no_grad():
        for layer in binary_layers(model):
            layer.weight.clamp_(-bound, bound)


__all__ = ["MODELS", "get_model", "load_model_config", "binary_layers", "clip_latent_weights",
           "BinaryLinear", "BinaryConv2d", "PerTensorNorm", "BinaryMLP", "BinaryCNV", "BinaryResNet"]
