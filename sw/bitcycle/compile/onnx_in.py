"""``bitcycle compile --onnx FILE``: a QONNX graph exported by ``brevitas.export.export_qonnx`` from any
W1A1 model of the supported form (binary weights, sign activations, BatchNorm, an 8-bit or binary
input, MatMul/Gemm/Conv/MaxPool, with or without a trailing TopK), e.g. Brevitas' own
``brevitas_examples.bnn_pynq`` TFC/SFC/LFC/CNV, made into what the compile flow takes from a checkpoint:

* **pixel-code input**: the graph's input is a float tensor (FINN's models take x in [0, 1] and map it
  to 2x − 1 themselves). ``x = input_scale · p + input_offset`` for raw pixel codes p = 0..pixel_max is
  put in front as Mul/Add nodes (FINN's ``ToTensor`` step). Without flags the map is read from the
  graph: the scalar Mul/Add/Sub/Div chain before the first quantiser tells which input interval its
  range [lo, hi] corresponds to, and codes 0..pixel_max are spread over that interval. Given flags are
  checked against the same interval.
* **integer logits**: a trailing TopK is removed (argmax is on the host) and the trailing scalar affine
  (Brevitas' ``TensorNorm``: Sub, Div, Mul, Add) is cut off and returned as ``(head_scale, head_bias)``.

The reference for every stage check is the prepared QONNX graph itself, run by qonnx's ``execute_onnx``
(its Quant / BipolarQuant execution follows Brevitas'). Bad input gets one ``BitCycleError`` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bitcycle.errors import BitCycleError

QUANT_OPS = ("Quant", "BipolarQuant")
LAYOUT_OPS = ("Reshape", "Flatten", "Transpose", "Identity")
AFFINE_OPS = ("Mul", "Div", "Add", "Sub")
MATRIX_OPS = ("MatMul", "Gemm", "Conv")


@dataclass
class OnnxModel:
    """Duck-types ``bitcycle.compile.export.ExportedModel`` for ``build_project``."""

    qonnx: Any                       # ModelWrapper: pixel codes in, integer outputs out
    name: str
    input_shape: tuple
    pixel_max: float
    input_scale: float               # graph input x = input_scale · p + input_offset
    input_offset: float
    head_scale: float = 1.0
    head_bias: float = 0.0
    meta: dict = field(default_factory=dict)
    module: object = None            # no torch module

    def save_qonnx(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.qonnx.save(str(path))
        return path

    def integer_outputs(self, pixels: np.ndarray) -> np.ndarray:
        from bitcycle.compile.flow import execute

        out = execute(self.qonnx, pixels)
        if not np.array_equal(out, np.round(out)):
            raise BitCycleError(f"{self.name}: the graph's outputs are not integers after cutting its trailing affine; "
                                "its last matrix layer must have binary weights with scale 1 on sign inputs")
        return out

    def driver_input(self, bits: int):
        """(scale, offset) of driver.json's input quantiser x_int = round(p·scale + offset) for the
        first layer's ``bits``, or None + why when the driver's model cannot express this graph's."""
        q = self.meta["input_quant"]
        if q["op"] == "BipolarQuant" and bits == 1:
            return (self.input_scale * q["a"], self.input_offset * q["a"] + q["b"]), None
        if q["op"] != "Quant" or q["bits"] != bits or q["zeropt"] != 0 or not q["signed"]:
            return None, f"the graph's input quantiser ({q['op']}, {q.get('bits')} bits) is not the driver's signed {bits}-bit one"
        s = q["scale"]
        scale, offset = self.input_scale * q["a"] / s, (self.input_offset * q["a"] + q["b"]) / s
        # the driver clips to [−2^(b−1), 2^(b−1) − 1]; a narrow-range quantiser clips at −2^(b−1) + 1
        if q["narrow"] and min(offset, offset + scale * self.pixel_max) < -(2 ** (bits - 1)) + 0.5:
            return None, "the graph's narrow-range input quantiser clips at a level the driver's does not"
        return (scale, offset), None


# ----------------------------------------------------------------------------- loading
def load_qonnx(path) -> Any:
    """The file as a cleaned-up qonnx ModelWrapper; one line for a missing, corrupt or non-QONNX file."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    p = Path(path)
    if not p.is_file():
        raise BitCycleError(f"--onnx {p}: no such file; export one with brevitas.export.export_qonnx(model, input_t, path)")
    try:
        proto = onnx.load(str(p))
    except Exception as err:  # noqa: BLE001 - protobuf raises several types for a bad file
        raise BitCycleError(f"--onnx {p} is not an ONNX file ({type(err).__name__}); give the file "
                            "brevitas.export.export_qonnx wrote") from None
    ops = [n.op_type for n in proto.graph.node]
    if any(op in ("MultiThreshold", "XnorPopcountMatMul") or op.startswith("MVAU") for op in ops):
        raise BitCycleError(f"--onnx {p} is already a FINN-ONNX graph (it has MultiThreshold/MVAU nodes); "
                            "give the QONNX export from Brevitas (before FINN's transformations)")
    if not any(op in QUANT_OPS for op in ops):
        raise BitCycleError(f"--onnx {p} has no Quant/BipolarQuant nodes, so it is not a QONNX export of a "
                            "quantised model; export a Brevitas W1A1 model with brevitas.export.export_qonnx")
    if len(proto.graph.input) - len(proto.graph.initializer) > 1 or len(proto.graph.output) != 1:
        raise BitCycleError(f"--onnx {p}: the graph has {len(proto.graph.input)} inputs and {len(proto.graph.output)} "
                            "outputs; BitCycle compiles single-input, single-output classifiers")
    from bitcycle.compile.passes import SUPPORTED_QONNX_OPS

    for node in proto.graph.node:  # named as in the user's file, before cleanup renames them
        if node.op_type not in SUPPORTED_QONNX_OPS | {"TopK"}:
            raise BitCycleError(
                f"node {node.name or node.output[0]} is a {node.op_type}, which BitCycle cannot compile; supported: "
                f"{', '.join(sorted(SUPPORTED_QONNX_OPS | {'TopK'}))} forming binary Linear/Conv → BatchNorm → sign "
                "(→ MaxPool) layers: replace it in the model")
        node.doc_string = ORIG + node.name
    dims = [d.dim_value if d.HasField("dim_value") else None for d in proto.graph.input[0].type.tensor_type.shape.dim]
    if not dims or any(d is None or d < 1 for d in dims) or dims[0] != 1:
        raise BitCycleError(f"--onnx {p}: the graph input has shape {dims}; export it with a fixed batch-1 example, "
                            "e.g. export_qonnx(model, input_t=torch.zeros(1, 1, 28, 28), export_path=...)")
    try:
        return cleanup_model(ModelWrapper(proto))
    except Exception as err:  # noqa: BLE001
        raise BitCycleError(f"--onnx {p}: qonnx cannot clean up the graph ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}); re-export it with export_qonnx") from None


ORIG = "bitcycle-orig-name:"


def _nm(node) -> str:
    """The node's name after qonnx's cleanup (as in build/.../intermediate_models/), with its name in the user's file."""
    doc = node.doc_string or ""
    orig = doc[len(ORIG):] if doc.startswith(ORIG) else ""
    return f"{node.name} ({orig} in the file)" if orig and orig != node.name else node.name


def _scalar(model, name):
    v = model.get_initializer(name)
    if v is None or np.asarray(v).size != 1:
        return None
    return float(np.asarray(v).reshape(-1)[0])


def _quant_info(model, node) -> dict:
    from qonnx.custom_op.registry import getCustomOp

    if node.op_type == "BipolarQuant":
        return {"op": "BipolarQuant", "bits": 1, "scale": _scalar(model, node.input[1]), "node": _nm(node)}
    inst = getCustomOp(node)
    return {"op": "Quant", "node": _nm(node), "scale": _scalar(model, node.input[1]),
            "zeropt": _scalar(model, node.input[2]), "bits": _scalar(model, node.input[3]),
            "signed": bool(inst.get_nodeattr("signed")), "narrow": bool(inst.get_nodeattr("narrow"))}


def check_datatypes(model) -> dict:
    """Binary weights on every matrix layer, sign activations into every layer but the first, an
    input quantiser of 1..8 bits; returns the input quantiser's description."""
    first = None
    for node in model.graph.node:
        if node.op_type not in MATRIX_OPS:
            continue
        wq = model.find_producer(node.input[1])
        if wq is None or wq.op_type not in QUANT_OPS:
            raise BitCycleError(f"layer {_nm(node)} ({node.op_type}) has float weights (no Quant node on {node.input[1]}); "
                                "the engine multiplies binary ±1 weights: use QuantLinear/QuantConv2d with weight_bit_width=1")
        w = _quant_info(model, wq)
        if w["op"] == "Quant" and w["bits"] != 1:
            raise BitCycleError(f"layer {_nm(node)} ({node.op_type}) has {w['bits']:g}-bit weights ({_nm(wq)}); "
                                "the engine multiplies binary ±1 weights: export the model with weight_bit_width=1")
        src = model.find_producer(node.input[0])
        while src is not None and src.op_type in LAYOUT_OPS + ("MaxPool",):
            src = model.find_producer(src.input[0])
        if src is None or src.op_type not in QUANT_OPS:
            raise BitCycleError(f"layer {_nm(node)} ({node.op_type}) takes unquantised float input; put a sign "
                                "(QuantIdentity, bit_width=1) or, before the first layer, an 8-bit QuantIdentity in front of it")
        a = _quant_info(model, src)
        if first is None:
            first = dict(a, layer=node.name, quant=src)
            if a["bits"] is None or not 1 <= a["bits"] <= 8:
                raise BitCycleError(f"the first layer {_nm(node)} takes {a['bits']}-bit input ({_nm(src)}); "
                                    "BitCycle's first layer takes 1..8-bit input: quantise the input to 8 bits")
        elif a["op"] != "BipolarQuant" and a["bits"] != 1:
            raise BitCycleError(f"layer {_nm(node)} takes {a['bits']:g}-bit activations ({_nm(src)}); BitCycle compiles "
                                "W1A1 models (sign activations between layers): export with act_bit_width=1")
    if first is None:
        raise BitCycleError("the graph has no MatMul/Gemm/Conv layer; BitCycle compiles binary Linear/Conv models")
    return first


# ----------------------------------------------------------------------------- input and head
def input_affine(model, quant_node) -> tuple[float, float, list]:
    """(a, b): the first quantiser sees a·x + b of the graph input x, through layout ops and scalar
    Mul/Div/Add/Sub; the node names on the way."""
    a, b, names = 1.0, 0.0, []
    gin = model.graph.input[0].name
    chain = []
    t = quant_node.input[0]
    while t != gin:
        prod = model.find_producer(t)
        if prod is None:
            raise BitCycleError(f"the first quantiser {_nm(quant_node)} is not fed by the graph input")
        chain.append(prod)
        t = prod.input[0]
    for node in reversed(chain):
        names.append(node.name)
        if node.op_type in LAYOUT_OPS:
            continue
        c = _scalar(model, node.input[1]) if node.op_type in AFFINE_OPS else None
        if c is None:
            raise BitCycleError(f"node {_nm(node)} ({node.op_type}) sits between the graph input and the first "
                                "quantiser; only layout ops and scalar Mul/Div/Add/Sub may: normalise per tensor")
        if node.op_type == "Mul":
            a, b = a * c, b * c
        elif node.op_type == "Div":
            a, b = a / c, b / c
        elif node.op_type == "Add":
            b += c
        else:
            b -= c
    return a, b, names


def quant_range(q: dict) -> tuple[float, float]:
    """The input interval the quantiser's levels span (its full scale)."""
    if q["op"] == "BipolarQuant":
        s = abs(q["scale"] or 1.0)
        return -s, s
    bits, s, z = int(q["bits"]), q["scale"], q["zeropt"]
    if q["signed"]:
        lo, hi = -(2 ** (bits - 1)) + (1 if q["narrow"] else 0), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2 ** bits - 1 - (1 if q["narrow"] else 0)
    return (lo - z) * s, (hi - z) * s


def _remove(model, node):
    model.graph.node.remove(node)


def cut_head(model) -> tuple[float, float, dict]:
    """Remove a trailing TopK and the trailing scalar affine after the last matrix layer."""
    from onnx import TensorProto, helper

    meta: dict[str, Any] = {}
    out = model.graph.output[0]
    out_name = out.name
    node = model.find_producer(out_name)
    if node is not None and node.op_type == "TopK":
        meta["topk"] = int(np.asarray(model.get_initializer(node.input[1])).reshape(-1)[0])
        _remove(model, node)
        out_name = node.input[0]
        node = model.find_producer(out_name)
    scale, bias = 1.0, 0.0
    ops = []
    while node is not None and node.op_type in AFFINE_OPS:
        c = _scalar(model, node.input[1])
        if c is None:
            raise BitCycleError(f"the graph ends in {_nm(node)} ({node.op_type}) with a per-channel constant; "
                                "end the model at its last binary layer or with a per-tensor norm (TensorNorm)")
        ops.append((node.op_type, c))
        _remove(model, node)
        out_name = node.input[0]
        node = model.find_producer(out_name)
    for op, c in reversed(ops):  # apply in graph order: y = scale·z + bias
        if op == "Mul":
            scale, bias = scale * c, bias * c
        elif op == "Div":
            scale, bias = scale / c, bias / c
        elif op == "Add":
            bias += c
        else:
            bias -= c
    if node is None or node.op_type not in MATRIX_OPS:
        raise BitCycleError(f"the graph must end at a binary matrix layer (then an optional per-tensor affine and "
                            f"TopK), it ends at {node.op_type if node else 'its input'}")
    if out_name != out.name:
        shape = model.get_tensor_shape(out_name)
        for vi in list(model.graph.value_info):
            if vi.name == out_name:
                model.graph.value_info.remove(vi)
        model.graph.output.remove(out)
        model.graph.output.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, shape))
    meta["head_ops"] = [op for op, _ in reversed(ops)]
    return scale, bias, meta


def add_pixel_input(model, scale: float, offset: float):
    """New graph input ``pixels`` (codes) → Mul(scale) → Add(offset) → the old input."""
    from onnx import TensorProto, helper

    gin = model.graph.input[0]
    old, shape = gin.name, model.get_tensor_shape(gin.name)
    new = "pixels"
    for n in model.graph.node:
        for j, t in enumerate(n.input):
            if t == old:
                n.input[j] = "pixels_scaled"
    model.set_initializer("pixel_scale", np.asarray(scale, dtype=np.float32).reshape(1))
    model.set_initializer("pixel_offset", np.asarray(offset, dtype=np.float32).reshape(1))
    gin.name = new
    model.graph.node.insert(0, helper.make_node("Mul", [new, "pixel_scale"], ["pixels_mul"], name="PixelScale"))
    model.graph.node.insert(1, helper.make_node("Add", ["pixels_mul", "pixel_offset"], ["pixels_scaled"],
                                                name="PixelOffset"))
    model.graph.value_info.append(helper.make_tensor_value_info("pixels_mul", TensorProto.FLOAT, shape))
    model.graph.value_info.append(helper.make_tensor_value_info("pixels_scaled", TensorProto.FLOAT, shape))
    return model


def _nice_interval(x_lo: float, x_hi: float, pixel_max: float) -> tuple[float, float]:
    """The quantiser's span read back to the input is [0, 1] for FINN's models and [0, pixel_max]
    for graphs that take codes; its levels stop a step short of the round end (127/128). Snap an
    end within 2 % of the width to 0 and to the nearest of 1, pixel_max, 255, 2^k."""
    width = x_hi - x_lo
    if abs(x_lo) <= 0.02 * width:
        x_lo = 0.0
    cands = [1.0, float(pixel_max), 255.0] + [2.0 ** k for k in range(-8, 17)]
    best = min(cands, key=lambda c: abs(c - x_hi))
    if abs(best - x_hi) <= 0.02 * width:
        x_hi = best
    return x_lo, x_hi


def prepare_onnx(path, pixel_max: float, input_scale: float | None = None, input_offset: float | None = None,
                 name: str | None = None) -> OnnxModel:
    from qonnx.transformation.infer_shapes import InferShapes

    from bitcycle.compile.passes import CheckSupportedQONNX

    model: Any = load_qonnx(path)
    scale_h, bias_h, meta = cut_head(model)
    model = model.transform(CheckSupportedQONNX())
    q = check_datatypes(model)
    a, b, chain = input_affine(model, q["quant"])
    if a <= 0:
        raise BitCycleError(f"the input chain {' → '.join(chain) or '(none)'} scales the input by {a:g}; "
                            "BitCycle needs a positive scale (larger pixel codes → larger values)")
    lo, hi = quant_range(q)
    x_lo, x_hi = (lo - b) / a, (hi - b) / a  # the graph input interval the first quantiser spans
    x_lo, x_hi = _nice_interval(x_lo, x_hi, pixel_max)
    graph_scale = (x_hi - x_lo) / pixel_max
    given = input_scale is not None or input_offset is not None
    s = graph_scale if input_scale is None else float(input_scale)
    o = x_lo if input_offset is None else float(input_offset)
    if given:
        m_lo, m_hi = o, o + s * pixel_max
        width = x_hi - x_lo
        if abs(m_lo - x_lo) > 0.05 * width or abs(m_hi - x_hi) > 0.05 * width:
            raise BitCycleError(
                f"--input-scale {s:g} --input-offset {o:g} map pixel codes 0..{pixel_max:g} onto [{m_lo:g}, {m_hi:g}], "
                f"but the graph's first quantiser {q['node']} spans inputs [{x_lo:g}, {x_hi:g}]; give "
                f"--input-scale {graph_scale:.8g} --input-offset {x_lo:g} (or leave both out to read them from the graph)")
    qonnx_q = {k: v for k, v in q.items() if k not in ("quant",)}
    qonnx_q.update(a=a, b=b)
    meta.update(input_quant=qonnx_q, input_chain=chain, graph_input_range=[x_lo, x_hi], source=str(path))
    model = add_pixel_input(model, s, o).transform(InferShapes())
    shape = tuple(int(d) for d in model.get_tensor_shape("pixels"))
    return OnnxModel(qonnx=model, name=name or Path(path).stem, input_shape=shape, pixel_max=float(pixel_max),
                     input_scale=s, input_offset=o, head_scale=scale_h, head_bias=bias_h, meta=meta)
