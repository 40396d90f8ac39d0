"""Shapes of driver.json's conv and max-pool layers (pure Python: read on the board).

A conv layer is one engine product after im2col: sign(W)[out_ch, in_ch·k·k] times the operand
[in_ch·k·k, B·H'·W']. Its per-sample input is [in_channels, in_h, in_w] (torch's C,H,W order); its
output, after the activation and the optional max-pool, is [out_ch, H'', W''] — flattened in that
order when a dense layer follows (as torch's ``x.reshape(B, -1)``).

    H' = (in_h + 2·padding − kernel) // stride + 1        (torch's Conv2d, floor)
    H'' = (H' − pool.kernel) // pool.stride + 1            (torch's MaxPool2d, ceil_mode=False)
"""

from __future__ import annotations

from bitcycle.errors import BitCycleError

CONV_KEYS = {"in_channels": None, "in_h": None, "in_w": None, "kernel": None, "stride": 1, "padding": 0}
POOL_KEYS = {"kernel": None, "stride": None}  # stride None: = kernel


def conv_params(layer) -> dict:
    """The conv dict with its defaults filled in (stride 1, padding 0)."""
    return {k: layer.conv.get(k, d) for k, d in CONV_KEYS.items()}


def pool_params(layer) -> dict | None:
    if layer.pool is None:
        return None
    kernel = layer.pool["kernel"]
    return {"kernel": kernel, "stride": layer.pool.get("stride") or kernel}


def conv_hw(layer) -> tuple[int, int]:
    """(H', W') of a conv layer's product (before the pool)."""
    c = conv_params(layer)
    return ((c["in_h"] + 2 * c["padding"] - c["kernel"]) // c["stride"] + 1,
            (c["in_w"] + 2 * c["padding"] - c["kernel"]) // c["stride"] + 1)


def output_shape(layer) -> tuple[int, ...]:
    """Per-sample output after activation and pool: (C, H'', W'') for conv, (features,) for dense."""
    if layer.conv is None:
        return (layer.out_features,)
    h, w = conv_hw(layer)
    p = pool_params(layer)
    if p is not None:
        h, w = (h - p["kernel"]) // p["stride"] + 1, (w - p["kernel"]) // p["stride"] + 1
    return (layer.out_features, h, w)


def output_features(layer) -> int:
    n = 1
    for d in output_shape(layer):
        n *= d
    return n


def input_features(layer) -> int:
    """Values per sample the layer takes (in_features for dense, in_channels·in_h·in_w for conv)."""
    if layer.conv is None:
        return layer.in_features
    c = conv_params(layer)
    return c["in_channels"] * c["in_h"] * c["in_w"]


def _ints(d: dict, keys: dict, where: str, what: str) -> None:
    if not isinstance(d, dict):
        raise BitCycleError(f"{where}: '{what}' must be an object with keys {sorted(keys)}, got {d!r}")
    unknown = set(d) - set(keys)
    if unknown:
        raise BitCycleError(f"{where}: '{what}' has unknown keys {sorted(unknown)}; allowed: {sorted(keys)}")
    for key, default in keys.items():
        if key not in d and default is None and not (what == "pool" and key == "stride"):
            raise BitCycleError(f"{where}: '{what}' is missing {key!r}")
        v = d.get(key, default)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "padding" else 1):
            raise BitCycleError(f"{where}: {what}.{key}={v!r} must be an integer >= {0 if key == 'padding' else 1}")


def check_layer(layer, where: str) -> None:
    """A conv/pool layer's own geometry: keys, in_features = in_channels·kernel², sizes >= 1."""
    if layer.conv is None:
        if layer.pool is not None:
            raise BitCycleError(f"{where}: 'pool' needs a conv layer (a max-pool works on [C, H, W] maps)")
        return
    _ints(layer.conv, CONV_KEYS, where, "conv")
    c = conv_params(layer)
    if layer.in_features != c["in_channels"] * c["kernel"] ** 2:
        raise BitCycleError(f"{where}: in_features={layer.in_features} but a conv's product has in_channels·kernel² = "
                            f"{c['in_channels']}·{c['kernel']}² = {c['in_channels'] * c['kernel'] ** 2} columns")
    h, w = conv_hw(layer)
    if h < 1 or w < 1:
        raise BitCycleError(f"{where}: a {c['kernel']}×{c['kernel']} kernel (padding {c['padding']}) does not fit the "
                            f"{c['in_h']}×{c['in_w']} input; use a smaller kernel or more padding")
    if layer.pool is not None:
        _ints(layer.pool, POOL_KEYS, where, "pool")
        p = pool_params(layer)
        if p["kernel"] > min(h, w):  # type: ignore[index]
            raise BitCycleError(f"{where}: pool kernel {p['kernel']} is larger than the {h}×{w} conv output")  # type: ignore[index]


def check_chain(prev, layer, where: str) -> None:
    """layer takes what prev gives: the same [C, H, W] for conv after conv, the flattened count else."""
    gives = output_shape(prev)
    if layer.conv is not None:
        c = conv_params(layer)
        takes: tuple[int, ...] = (c["in_channels"], c["in_h"], c["in_w"])
        if len(gives) == 3 and gives != takes:
            raise BitCycleError(f"{where}: takes [C, H, W] = {list(takes)} but the previous layer gives {list(gives)}")
        if len(gives) == 1 and gives[0] != input_features(layer):
            raise BitCycleError(f"{where}: takes {input_features(layer)} values but the previous layer gives {gives[0]}")
        return
    if output_features(prev) != layer.in_features:
        shape = "" if len(gives) == 1 else "×".join(map(str, gives)) + " = "
        raise BitCycleError(f"{where}: in_features={layer.in_features} but the previous layer gives {shape}"
                            f"{output_features(prev)}")
