"""``driver.json``: the model description the driver consumes (schema ``bitcycle.driver/1``).

The compile stage writes it next to the bitstream; ``bitcycle run`` without a compiled
model builds the same structure in memory from a model name (:func:`spec_for_model`). Pure Python
+ numpy, no torch/FINN: it is read on the board.

Layout (every key is checked by :func:`validate`; unknown top-level keys are rejected so a typo
does not pass silently)::

    {
      "schema": "bitcycle.driver/1",
      "model": "sfc",                       # zoo name, free text for the user
      "classes": 10,
      "input": {"features": 64, "bits": 8,  # first-layer integer input width
                "scale": 15.875, "offset": -127.0},   # x_int = clip(round(x*scale + offset), bits)
      "layers": [                            # in order; layer i+1 in_features == layer i out_features
        {"name": "fc0", "in_features": 64, "out_features": 256, "in_bits": 8,
         "norm": "batchnorm", "act": "sign"},
        {"name": "fc1", ..., "in_bits": 1, "norm": "batchnorm", "act": "sign"},
        {"name": "fc2", ..., "in_bits": 1, "norm": "pertensor", "act": "none"}   # logits
      ],
      # a conv layer is one engine matrix product after im2col on the host: in_features =
      # in_channels·kernel², out_features = out channels; its input is [in_channels, in_h, in_w]
      # per sample (torch's C,H,W order, flattened so for input.features); "pool" (optional, any
      # layer with "conv") is a max-pool after the activation (bitcycle.hwif.convshapes):
      #   {"name": "conv0", "in_features": 9, "out_features": 16, "in_bits": 8, "norm": "batchnorm",
      #    "act": "sign", "conv": {"in_channels": 1, "in_h": 28, "in_w": 28, "kernel": 3,
      #    "stride": 1, "padding": 0}, "pool": {"kernel": 2, "stride": 2}}
      "grad_bits": {"min": 2, "max": 8},    # range the schedule may ask for (within engine bits)
      "engine": {"id": 0x42435943, "version": 1, "pe": 4, "simd": 16, "acc_bits": 32,
                 "max_bits": 16, "weight_words": 1024, "act_tiles": 256, "max_chunks": 64,
                 "clock_hz": 100000000,
                 "stream_bytes": 4, "thr_max": 1,    # must match the overlay's ID/config registers
                 "rtl_parameters": {"PE": 4, ...}},  # compiled: every bitcycle_top parameter, as bd.tcl
                                                     # sets it (bitcycle.hwif.top_params); null otherwise
      "overlay": {"bitfile": "bitcycle.bit", "ip": "bitcycle_top_0", "dma": "axi_dma_0"},
      "params": null                         # or a path (relative to driver.json) of an .npz with
                                             # "<layer>.weight" (latent float or ±1) and
                                             # "<layer>.bn_{mean,var,gamma,beta}"
    }
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bitcycle.hwif import convshapes
from bitcycle.hwif import regmap as _regmap
from bitcycle.hwif.top_params import check_against_spec
from bitcycle.errors import BitCycleError

SCHEMA = "bitcycle.driver/1"
ENGINE_ID = _regmap.ID_VALUE  # the engine's ID register ("BCYC"), checked on load
ENGINE_VERSION = _regmap.VERSION_MAJOR  # VERSION.MAJOR must match; MINOR may differ
NORMS = ("batchnorm", "pertensor", "none")
ACTS = ("sign", "none")
_TOP_KEYS = {"schema", "model", "classes", "input", "layers", "grad_bits", "engine", "overlay", "params"}


@dataclass
class InputSpec:
    features: int
    bits: int = 8
    scale: float = 1.0
    offset: float = 0.0

    @property
    def full_scale(self) -> float:
        """The input value that maps to the top of the integer range: 1.0 when the model takes
        [0, 1] data (``spec_for_model``), the pixel maximum (e.g. 255) when a compiled model takes
        raw pixel codes. Multiply [0, 1] data by it before :meth:`Accelerator.forward`."""
        return float(2 ** self.bits / self.scale) if self.scale else 1.0


@dataclass
class LayerSpec:
    name: str
    in_features: int
    out_features: int
    in_bits: int = 1
    norm: str = "batchnorm"
    act: str = "sign"
    conv: dict | None = None   # im2col geometry (a conv layer), None: dense
    pool: dict | None = None   # max-pool after the activation (conv layers only), None: none


@dataclass
class EngineSpec:
    id: int = ENGINE_ID
    version: int = ENGINE_VERSION
    pe: int = 4
    simd: int = 16
    acc_bits: int = 32
    max_bits: int = 16
    weight_words: int = 1024     # weight-memory depth in PE×SIMD tiles (WMEM_DEPTH)
    act_tiles: int = 256         # sign(x) memory depth in PE×SIMD tiles for backward-weight (AMEM_DEPTH)
    max_chunks: int = 64         # chunks (SIMD or PE values) per streamed vector (MAX_CHUNKS)
    clock_hz: int = 100_000_000
    stream_bytes: int = 4        # AXI-Stream / DMA data width in bytes (4 or 8)
    thr_max: int = 1             # threshold slots per output channel
    # every bitcycle_top parameter the overlay was built with (compile writes it; bd.tcl and the sim
    # backend build from it); None for a model built in memory (the sim backend derives it)
    rtl_parameters: dict | None = None


@dataclass
class OverlaySpec:
    bitfile: str | None = "bitcycle.bit"
    ip: str = "bitcycle_top_0"
    dma: str = "axi_dma_0"


@dataclass
class DriverSpec:
    model: str
    classes: int
    input: InputSpec
    layers: list[LayerSpec]
    grad_bits: dict = field(default_factory=lambda: {"min": 2, "max": 8})
    engine: EngineSpec = field(default_factory=EngineSpec)
    overlay: OverlaySpec = field(default_factory=OverlaySpec)
    params: str | None = None
    schema: str = SCHEMA
    source: Path | None = None  # where it was loaded from (not serialised)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        for layer in d["layers"]:  # a dense layer is written as before conv layers existed
            for key in ("conv", "pool"):
                if layer[key] is None:
                    del layer[key]
        return d

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def layer(self, name_or_index) -> LayerSpec:
        if isinstance(name_or_index, int):
            if not 0 <= name_or_index < len(self.layers):
                raise BitCycleError(f"layer index {name_or_index} out of range: the model has {len(self.layers)} layers")
            return self.layers[name_or_index]
        for layer in self.layers:
            if layer.name == name_or_index:
                return layer
        raise BitCycleError(f"no layer named {name_or_index!r}; the model has {[l.name for l in self.layers]}")

    def params_path(self) -> Path | None:
        if self.params is None:
            return None
        p = Path(self.params)
        return p if p.is_absolute() or self.source is None else self.source.parent / p


def _need(d: dict, key: str, typ, where: str):
    if key not in d:
        raise BitCycleError(f"driver.json: {where} is missing {key!r}")
    value = d[key]
    if typ is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise BitCycleError(f"driver.json: {where}.{key} must be an integer, got {value!r}")
    if typ is float and not isinstance(value, (int, float)):
        raise BitCycleError(f"driver.json: {where}.{key} must be a number, got {value!r}")
    if typ is str and not isinstance(value, str):
        raise BitCycleError(f"driver.json: {where}.{key} must be a string, got {value!r}")
    return value


def _sub(cls, d: Any, where: str, types: dict):
    if not isinstance(d, dict):
        raise BitCycleError(f"driver.json: {where} must be an object, got {type(d).__name__}")
    unknown = set(d) - set(types)
    if unknown:
        raise BitCycleError(f"driver.json: {where} has unknown keys {sorted(unknown)}; allowed: {sorted(types)}")
    kwargs: dict[str, Any] = {}
    defaults = cls.__dataclass_fields__
    for key, typ in types.items():
        if key in d:
            if d[key] is None and typ is not int:
                kwargs[key] = None
            else:
                kwargs[key] = _need(d, key, typ, where)
        elif defaults[key].default is defaults[key].default_factory:  # no default: required (MISSING)
            _need(d, key, typ, where)
    return cls(**kwargs)


def from_dict(d: dict, source: Path | None = None) -> DriverSpec:
    """Parse and validate a driver.json object; raises BitCycleError naming the bad field."""
    if not isinstance(d, dict):
        raise BitCycleError("driver.json must hold a JSON object")
    unknown = set(d) - _TOP_KEYS
    if unknown:
        raise BitCycleError(f"driver.json: unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    schema = d.get("schema")
    if schema != SCHEMA:
        raise BitCycleError(f"driver.json: schema is {schema!r}, this driver reads {SCHEMA!r}; re-run `bitcycle compile`")
    layers_raw = d.get("layers")
    if not isinstance(layers_raw, list) or not layers_raw:
        raise BitCycleError("driver.json: 'layers' must be a non-empty list")
    ltypes = {"name": str, "in_features": int, "out_features": int, "in_bits": int, "norm": str, "act": str,
              "conv": dict, "pool": dict}
    spec = DriverSpec(
        model=_need(d, "model", str, "top level"),
        classes=_need(d, "classes", int, "top level"),
        input=_sub(InputSpec, _need(d, "input", dict, "top level"), "input",
                   {"features": int, "bits": int, "scale": float, "offset": float}),
        layers=[_sub(LayerSpec, l, f"layers[{i}]", ltypes) for i, l in enumerate(layers_raw)],
        grad_bits=dict(d.get("grad_bits", {"min": 2, "max": 8})),
        engine=_sub(EngineSpec, d.get("engine", {}), "engine",
                    {k: (dict if k == "rtl_parameters" else int) for k in EngineSpec.__dataclass_fields__}),
        overlay=_sub(OverlaySpec, d.get("overlay", {}), "overlay", {"bitfile": str, "ip": str, "dma": str}),
        params=d.get("params"),
        source=source,
    )
    validate(spec)
    return spec


def validate(spec: DriverSpec) -> DriverSpec:
    """Cross-field checks: chained shapes, bit ranges inside the engine's, known norms/acts."""
    eng = spec.engine
    if not 1 <= eng.max_bits <= 16:
        raise BitCycleError(f"driver.json: engine.max_bits={eng.max_bits} must be in 1..16")
    for name in ("pe", "simd", "weight_words", "act_tiles", "max_chunks", "clock_hz", "thr_max"):
        if getattr(eng, name) < 1:
            raise BitCycleError(f"driver.json: engine.{name} must be >= 1, got {getattr(eng, name)}")
    if eng.stream_bytes not in (4, 8):
        raise BitCycleError(f"driver.json: engine.stream_bytes={eng.stream_bytes} must be 4 or 8 (32/64-bit AXI DMA)")
    for name in ("pe", "simd"):
        v = getattr(eng, name)
        if v & (v - 1) or v > 8 * eng.stream_bytes:
            raise BitCycleError(f"driver.json: engine.{name}={v} must be a power of two <= the stream width "
                                f"({8 * eng.stream_bytes} bits)")
    if eng.rtl_parameters is not None:
        check_against_spec(eng.rtl_parameters, eng)
    if not 2 <= eng.acc_bits <= 32:
        raise BitCycleError(f"driver.json: engine.acc_bits={eng.acc_bits} must be in 2..32 (results are int32 lanes)")
    if spec.classes < 2:
        raise BitCycleError(f"driver.json: classes={spec.classes} must be >= 2")
    if not 1 <= spec.input.bits <= eng.max_bits:
        raise BitCycleError(f"driver.json: input.bits={spec.input.bits} outside the engine's 1..{eng.max_bits}")
    convshapes.check_layer(spec.layers[0], f"driver.json: layers[0] ({spec.layers[0].name})")
    first_in = convshapes.input_features(spec.layers[0])
    if spec.input.features != first_in:
        raise BitCycleError(f"driver.json: input.features={spec.input.features} but layers[0] takes {first_in} "
                            "values per sample")
    names = set()
    for i, layer in enumerate(spec.layers):
        where = f"driver.json: layers[{i}] ({layer.name})"
        if layer.name in names:
            raise BitCycleError(f"{where}: duplicate layer name")
        names.add(layer.name)
        if layer.in_features < 1 or layer.out_features < 1:
            raise BitCycleError(f"{where}: in/out features must be >= 1")
        if not 1 <= layer.in_bits <= eng.max_bits:
            raise BitCycleError(f"{where}: in_bits={layer.in_bits} outside the engine's 1..{eng.max_bits}")
        if layer.norm not in NORMS:
            raise BitCycleError(f"{where}: norm={layer.norm!r}, choose from {NORMS}")
        if layer.act not in ACTS:
            raise BitCycleError(f"{where}: act={layer.act!r}, choose from {ACTS}")
        convshapes.check_layer(layer, where)
        if i > 0:
            prev = spec.layers[i - 1]
            convshapes.check_chain(prev, layer, where)
            if prev.act == "sign" and layer.in_bits != 1:
                raise BitCycleError(f"{where}: input is binary (previous act 'sign') so in_bits must be 1")
    if spec.layers[-1].out_features != spec.classes:
        raise BitCycleError(
            f"driver.json: last layer gives {spec.layers[-1].out_features} outputs but classes={spec.classes}")
    if spec.layers[-1].conv is not None:
        raise BitCycleError("driver.json: the last layer must be dense (no 'conv'): it gives the logits")
    if spec.layers[-1].act != "none":
        raise BitCycleError("driver.json: the last layer must have act 'none' (it gives the logits)")
    gb = spec.grad_bits
    if not isinstance(gb, dict) or set(gb) != {"min", "max"}:
        raise BitCycleError("driver.json: grad_bits must be {\"min\": int, \"max\": int}")
    if not 1 <= gb["min"] <= gb["max"] <= eng.max_bits:
        raise BitCycleError(f"driver.json: grad_bits {gb} must satisfy 1 <= min <= max <= engine.max_bits={eng.max_bits}")
    return spec


def load(path_or_dict) -> DriverSpec:
    """Load a driver.json (path, directory holding driver.json, dict or DriverSpec) and validate it."""
    if isinstance(path_or_dict, DriverSpec):
        return validate(copy.deepcopy(path_or_dict))
    if isinstance(path_or_dict, dict):
        return from_dict(path_or_dict)
    path = Path(path_or_dict)
    if path.is_dir():
        path = path / "driver.json"
    if not path.is_file():
        raise BitCycleError(f"driver.json not found at {path}; run `bitcycle compile` or pass --model NAME")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BitCycleError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    return from_dict(data, source=path.resolve())


# The zoo as the driver sees it (shapes only). The torch zoo (bitcycle.nets) has the same shapes;
# the driver must not import it (torch), so the few numbers are repeated here.
# (features, classes, x_max): samples arrive in [0, x_max] (bitcycle.train.data gives [0, 1]).
DATASET_SHAPES = {"digits": (64, 10, 1.0), "fashion-mnist": (784, 10, 1.0)}
DATASET_IMAGES = {"digits": (1, 8, 8), "fashion-mnist": (1, 28, 28)}  # (C, H, W) of the flat samples
# bitcycle.nets.cnv: valid 3×3 convs, BatchNorm, sign, a 2×2 max-pool after the 2nd and 4th, then FC
CNV_CHANNELS = {32: (64, 64, 128, 128, 256, 256), 28: (64, 64, 128, 128, 256)}
CNV_FC = (512, 512)
CNV_POOL_AFTER = (1, 3)
MODEL_HIDDEN = {"tfc": [64, 64, 64], "sfc": [256, 256, 256], "lfc": [1024, 1024, 1024], "mlp": [128, 128]}


def spec_for_model(model: str, dataset: str = "digits", hidden: list[int] | None = None,
                   grad_bits: tuple[int, int] = (2, 8), engine: EngineSpec | None = None,
                   options: dict | None = None) -> DriverSpec:
    """The driver.json of a zoo MLP or the CNV built in memory (``bitcycle run`` without a compiled
    model). ``options``: ``--set`` model options (cnv: width_mult, channels, fc)."""
    if dataset not in DATASET_SHAPES:
        raise BitCycleError(f"unknown dataset {dataset!r}; choose from {sorted(DATASET_SHAPES)}")
    if model == "cnv":
        return _cnv_spec(dataset, dict(options or {}), grad_bits, engine)
    if options:
        raise BitCycleError(f"--set {sorted(options)}: model {model!r} takes no options here; use --hidden for MLP widths")
    if hidden is None:
        if model not in MODEL_HIDDEN:
            raise BitCycleError(f"unknown model {model!r}; choose from {sorted(MODEL_HIDDEN)} (or give a driver.json)")
        hidden = MODEL_HIDDEN[model]
    features, classes, x_max = DATASET_SHAPES[dataset]
    in_bits = 8
    # as the torch zoo: x in [0, x_max] → 2x/x_max − 1 in [−1, 1] → 8-bit fixed point, step 2^-7
    # (x_int = clip(round(256·x/x_max − 128), −128, 127))
    scale = 256.0 / x_max
    widths = [features, *hidden, classes]
    layers = [
        LayerSpec(name=f"fc{i}", in_features=widths[i], out_features=widths[i + 1],
                  in_bits=in_bits if i == 0 else 1, norm="batchnorm" if i < len(widths) - 2 else "pertensor",
                  act="sign" if i < len(widths) - 2 else "none")
        for i in range(len(widths) - 1)
    ]
    spec = DriverSpec(model=model, classes=classes,
                      input=InputSpec(features=features, bits=in_bits, scale=scale, offset=-128.0),
                      layers=layers, grad_bits={"min": int(grad_bits[0]), "max": int(grad_bits[1])},
                      engine=engine or EngineSpec())
    return validate(spec)


def _cnv_spec(dataset: str, options: dict, grad_bits: tuple[int, int], engine: EngineSpec | None) -> DriverSpec:
    """bitcycle.nets.cnv.BinaryCNV's shapes (same options, same rounding of width_mult) as driver.json."""
    unknown = set(options) - {"width_mult", "channels", "fc"}
    if unknown:
        raise BitCycleError(f"--set {sorted(unknown)}: cnv here takes width_mult, channels, fc")
    in_ch, size, _ = DATASET_IMAGES[dataset]
    features, classes, x_max = DATASET_SHAPES[dataset]
    channels = options.get("channels") or CNV_CHANNELS.get(size)
    if channels is None:
        raise BitCycleError(f"cnv: no default conv plan for {size}×{size} inputs ({dataset}); give --set channels=[...]")
    wm = options.get("width_mult", 1.0)
    if isinstance(wm, bool) or not isinstance(wm, (int, float)) or wm <= 0:
        raise BitCycleError(f"cnv: width_mult={wm!r} must be a number > 0")
    channels = [max(1, int(round(c * wm))) for c in channels]
    fc = [max(1, int(round(f * wm))) for f in options.get("fc", CNV_FC)]
    layers, ch, h = [], in_ch, size
    for i, out_ch in enumerate(channels):
        if h < 3:
            raise BitCycleError(f"cnv: {len(channels)} convs shrink a {size}×{size} input to nothing; use fewer channels entries")
        pool = {"kernel": 2, "stride": 2} if i in CNV_POOL_AFTER else None
        layers.append(LayerSpec(name=f"conv{i}", in_features=ch * 9, out_features=out_ch, in_bits=8 if i == 0 else 1,
                                conv={"in_channels": ch, "in_h": h, "in_w": h, "kernel": 3, "stride": 1, "padding": 0},
                                pool=pool))
        h -= 2
        if pool is not None:
            h //= 2
        ch = out_ch
    width = ch * h * h
    if width < 1:
        raise BitCycleError(f"cnv: {len(channels)} convs shrink a {size}×{size} input to nothing; use fewer channels entries")
    for j, f in enumerate(fc):
        layers.append(LayerSpec(name=f"fc{j}", in_features=width, out_features=f))
        width = f
    layers.append(LayerSpec(name=f"fc{len(fc)}", in_features=width, out_features=classes, norm="pertensor", act="none"))
    spec = DriverSpec(model="cnv", classes=classes,
                      input=InputSpec(features=features, bits=8, scale=256.0 / x_max, offset=-128.0),
                      layers=layers, grad_bits={"min": int(grad_bits[0]), "max": int(grad_bits[1])},
                      engine=engine or EngineSpec())
    return validate(spec)
