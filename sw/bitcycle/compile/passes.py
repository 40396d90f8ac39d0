"""BitCycle's compile passes, each a small FINN-style transformation with one job.

Every pass is a ``qonnx.transformation.base.Transformation``: ``apply(model) -> (model, changed)``,
``changed`` true exactly when the call altered the graph (``ModelWrapper.transform`` then applies
the pass again until it reports no change, so every pass here is idempotent: a second call is a
no-op). Most compose FINN/qonnx transformations in the order FINN's own BNN flows use them and
compare the serialised graph before and after; the checks change nothing (always False) and turn
FINN's silent failures (a node that streamlining could not absorb, a float weight) into one
``BitCycleError`` line naming the node, what is supported and what to change.
"""

from __future__ import annotations

from qonnx.core.datatype import DataType
from qonnx.transformation.base import Transformation
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import (
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    RemoveStaticGraphInputs,
    RemoveUnusedTensors,
)
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from bitcycle.errors import BitCycleError

# QONNX ops a BitCycle model may contain (what the zoo's Brevitas layers export to).
SUPPORTED_QONNX_OPS = {
    "Quant", "BipolarQuant", "MatMul", "Gemm", "Conv", "BatchNormalization", "MaxPool", "Reshape",
    "Flatten", "Mul", "Add", "Sub", "Div", "Transpose", "Identity", "Constant", "Shape", "Gather",
    "Unsqueeze", "Squeeze", "Concat", "Cast",
}
# Nodes that may stay outside the accelerator after conversion: layout shuffles at the input,
# the XNOR compensation (Mul/Add) at the output of the last layer.
HOST_OPS = {"Reshape", "Transpose", "Flatten", "Mul", "Add", "MultiThreshold"}
WEIGHT_OPS = ("MatMul", "Gemm", "Conv")


def _producer_op(model, tensor):
    prod = model.find_producer(tensor)
    return prod.op_type if prod is not None else None


def _apply_all(model, transforms):
    for t in transforms:
        model = model.transform(t)
    return model


def graph_bytes(model) -> bytes:
    """The whole model, serialised deterministically: equal bytes ⇔ the pass changed nothing."""
    return model.model.SerializeToString(deterministic=True)


def _composite(model, transforms):
    """Apply ``transforms`` in order; (model, whether the graph changed)."""
    before = graph_bytes(model)
    model = _apply_all(model, transforms)
    return model, graph_bytes(model) != before


class TidyUp(Transformation):
    """Shapes, constant folding, unique readable names, datatypes (FINN's tidy-up step)."""

    def apply(self, model):
        return _composite(model, [InferShapes(), FoldConstants(), GiveUniqueNodeNames(),
                                  GiveReadableTensorNames(), InferDataTypes(), RemoveStaticGraphInputs()])


class CheckSupportedQONNX(Transformation):
    """Reject what BitCycle cannot compile, before FINN fails somewhere deep: unknown ops, and
    matrix layers whose weights are not quantised (the engine needs ±1, FINN needs integers)."""

    def apply(self, model):
        for node in model.graph.node:
            if node.op_type not in SUPPORTED_QONNX_OPS:
                raise BitCycleError(
                    f"node {node.name or node.output[0]} is a {node.op_type}, which BitCycle cannot compile; "
                    "supported: binary Linear/Conv2d, BatchNorm, sign/8-bit activations, MaxPool2d; "
                    "replace it with a zoo layer (bitcycle.nets.layers)")
            if node.op_type in WEIGHT_OPS and len(node.input) > 1:
                w = node.input[1]
                src = _producer_op(model, w)
                if src not in ("Quant", "BipolarQuant"):
                    raise BitCycleError(
                        f"layer {node.name} ({node.op_type}) has float weights (no Quant node on {w}); "
                        "the engine needs binary ±1 weights: use bitcycle.nets.layers.BinaryLinear/BinaryConv2d")
            if node.op_type == "MatMul" and model.get_initializer(node.input[1]) is None \
                    and _producer_op(model, node.input[1]) is None:
                raise BitCycleError(f"layer {node.name}: both MatMul operands are activations; "
                                    "only weight × activation products map onto the engine")
        return model, False


class AnnotateInput(Transformation):
    """Mark the graph input as integer pixel codes (UINT8 for 0..255) so thresholds can be integer."""

    def __init__(self, pixel_max: float):
        super().__init__()
        self.pixel_max = int(pixel_max)

    def apply(self, model):
        bits = max(1, int(self.pixel_max).bit_length())
        name, dt = model.graph.input[0].name, DataType[f"UINT{bits}"]
        if model.get_tensor_datatype(name) == dt:
            return model, False
        model.set_tensor_datatype(name, dt)
        return model, True


class ToFinn(Transformation):
    """QONNX → FINN-ONNX (Quant nodes become MultiThreshold / annotated integer tensors)."""

    def apply(self, model):
        from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN

        return _composite(model, [ConvertQONNXtoFINN(), TidyUp()])


class ZeroGammaBatchNormToConstant(Transformation):
    """A BatchNorm channel with γ = 0 outputs the constant β; FINN's streamlining divides the
    thresholds by γ and then cannot absorb the channel's Mul. Where such a BN feeds only a sign
    (a bipolar MultiThreshold), set γ = δ with δ·|x − μ|/σ < |β|/2 for every accumulator below
    2^40 (golden.thresholds.FAR): the sign of every reachable input is unchanged, so the graph
    computes the same function, and FINN folds the channel into an out-of-range threshold. A
    channel with β = 0 is sign(0) = +1 everywhere; it gets β = 2^-20 first."""

    SAFE_RANGE = 2.0 ** 48  # > 2^40 · (any scale FINN leaves on the accumulator here)

    def apply(self, model):
        import numpy as np

        changed = False
        for node in model.get_nodes_by_op_type("BatchNormalization"):
            gamma = model.get_initializer(node.input[1])
            if gamma is None or not np.any(gamma == 0):
                continue
            consumers = model.find_consumers(node.output[0]) or []
            if not consumers or any(c.op_type != "MultiThreshold" for c in consumers):
                raise BitCycleError(
                    f"BatchNorm {node.name} has γ = 0 channels and does not feed a sign activation; "
                    "BitCycle folds such channels only into a following BatchNorm → sign")
            beta = np.array(model.get_initializer(node.input[2]), dtype=np.float64)
            var = np.array(model.get_initializer(node.input[4]), dtype=np.float64)
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            zero = gamma == 0
            beta = np.where(zero & (beta == 0), 2.0 ** -20, beta)
            delta = np.abs(beta) * np.sqrt(var + eps) / (2 * self.SAFE_RANGE)
            gamma = np.where(zero, delta, gamma).astype(np.float32)
            model.set_initializer(node.input[1], gamma)
            model.set_initializer(node.input[2], beta.astype(np.float32))
            changed = True
        return model, changed


class StreamlineBnn(Transformation):
    """FINN's streamlining: scales and BatchNorm move into integer thresholds (MultiThreshold).
    For CNNs also lowers Conv to Im2Col + MatMul in NHWC (FINN's CNV recipe)."""

    def apply(self, model):
        import finn.transformation.streamline.absorb as absorb
        from finn.transformation.streamline import Streamline
        from finn.transformation.streamline.reorder import MakeMaxPoolNHWC, MoveScalarLinearPastInvariants
        from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
        from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

        before = graph_bytes(model)
        model = _apply_all(model, [ZeroGammaBatchNormToConstant(), MoveScalarLinearPastInvariants(), Streamline()])
        if model.get_nodes_by_op_type("Conv"):
            model = _apply_all(model, [LowerConvsToMatMul(), MakeMaxPoolNHWC(),
                                       absorb.AbsorbTransposeIntoMultiThreshold(),
                                       absorb.AbsorbConsecutiveTransposes(), MoveInputTransposeFirst(),
                                       ConvertBipolarMatMulToXnorPopcount(), Streamline(),
                                       absorb.AbsorbTransposeIntoMultiThreshold(),
                                       absorb.AbsorbConsecutiveTransposes()])
        model = _apply_all(model, [InferDataLayouts(), RemoveUnusedTensors(), TidyUp()])
        return model, graph_bytes(model) != before


class MoveInputTransposeFirst(Transformation):
    """graph input → MultiThreshold (NCHW) → Transpose to NHWC  ⇒  input → Transpose → MultiThreshold
    (NHWC): the layout change then happens on the host, and the input quantiser becomes a FINN
    Thresholding layer on NHWC data like every other layer. Only for a chain: a graph input or
    quantised input that also feeds another node is an error (moving the Transpose would hand that
    node NHWC data)."""

    def apply(self, model):
        from qonnx.util.basic import get_by_name

        gin = model.graph.input[0].name
        firsts = model.find_consumers(gin) or []
        mt = next((n for n in firsts if n.op_type == "MultiThreshold"), None)
        if mt is None:
            return model, False
        seconds = model.find_consumers(mt.output[0]) or []
        tr = next((n for n in seconds if n.op_type == "Transpose"
                   and list(get_by_name(n.attribute, "perm").ints) == [0, 2, 3, 1]), None)
        if tr is None:
            return model, False
        for tensor, users in ((gin, firsts), (mt.output[0], seconds)):
            if len(users) > 1:
                raise BitCycleError(
                    f"tensor {tensor} feeds {len(users)} nodes ({', '.join(n.name or n.op_type for n in users)}); "
                    "BitCycle moves the input Transpose only on a chain input → MultiThreshold → Transpose: "
                    "give the other branch its own input quantiser")
        nchw = model.get_tensor_shape(gin)
        mid = model.make_new_valueinfo_name()
        model.set_tensor_shape(mid, [nchw[0], nchw[2], nchw[3], nchw[1]])
        out = tr.output[0]
        tr.input[0], tr.output[0] = gin, mid
        mt.input[0], mt.output[0] = mid, out
        model.set_tensor_datatype(mid, model.get_tensor_datatype(gin))
        layout = get_by_name(mt.attribute, "data_layout")
        if layout is None:
            from onnx import helper

            mt.attribute.append(helper.make_attribute("data_layout", "NHWC"))
        else:
            layout.s = b"NHWC"
        graph = model.graph
        graph.node.remove(tr)
        graph.node.insert(0, tr)
        return model, True


class ToXnorPopcount(Transformation):
    """Binary × binary MatMuls → XnorPopcountMatMul, their ±1 compensation absorbed into the
    thresholds, thresholds rounded to integers (RoundAndClipThresholds: needed for exactness)."""

    def apply(self, model):
        import finn.transformation.streamline.absorb as absorb
        from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
        from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount

        return _composite(model, [ConvertBipolarMatMulToXnorPopcount(), absorb.AbsorbAddIntoMultiThreshold(),
                                  absorb.AbsorbMulIntoMultiThreshold(), RoundAndClipThresholds(),
                                  InferDataTypes(), TidyUp()])


class CheckStreamlined(Transformation):
    """After streamlining only integer MatMuls, thresholds, pooling and layout ops may remain; a
    float node left between layers means FINN could not streamline the model."""

    ALLOWED = {"MatMul", "XnorPopcountMatMul", "MultiThreshold", "MaxPool", "MaxPoolNHWC", "Im2Col",
               "Reshape", "Transpose", "Flatten", "Mul", "Add"}

    def apply(self, model):
        nodes = list(model.graph.node)
        matmuls = [i for i, n in enumerate(nodes) if n.op_type in ("MatMul", "XnorPopcountMatMul")]
        last_mm = matmuls[-1] if matmuls else len(nodes)
        first_mm = matmuls[0] if matmuls else 0
        for i, node in enumerate(nodes):
            bad = node.op_type not in self.ALLOWED
            # scalar Mul/Add may remain only around the compute (input scaling, output compensation)
            if node.op_type in ("Mul", "Add") and first_mm < i < last_mm:
                bad = True
            if bad:
                raise BitCycleError(
                    f"FINN could not streamline node {node.name} ({node.op_type}) between the matrix layers; "
                    "BitCycle compiles chains of binary Linear/Conv → BatchNorm → sign (→ MaxPool); "
                    "remove residual adds/float ops from the model or train a zoo tfc/sfc/lfc/cnv model")
        return model, False


class InferHwLayers(Transformation):
    """MatMul + MultiThreshold → FINN's MVAU; lone thresholds → Thresholding; Im2Col → sliding
    window; MaxPool → Pool. Then FINN's weight / accumulator minimisation."""

    def apply(self, model):
        import finn.transformation.streamline.absorb as absorb
        from finn.transformation.fpgadataflow.convert_to_hw.binary_matrix_vector_activation import (
            InferBinaryMatrixVectorActivation,
        )
        from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
        from finn.transformation.fpgadataflow.convert_to_hw.pool import InferPool
        from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
            InferQuantizedMatrixVectorActivation,
        )
        from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
        from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
        from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
        from finn.transformation.move_reshape import RemoveCNVtoFCFlatten

        # sliding windows first: once the input quantiser is a Thresholding layer, FINN no longer
        # sees an integer datatype on the first Im2Col
        return _composite(model, [InferConvInpGen(), InferBinaryMatrixVectorActivation(),
                                  InferQuantizedMatrixVectorActivation(), InferThresholdingLayer(), InferPool(),
                                  InferConvInpGen(),  # InferPool lowers MaxPool to Im2Col + Pool
                                  RemoveCNVtoFCFlatten(), absorb.AbsorbConsecutiveTransposes(),
                                  InferDataTypes(), MinimizeWeightBitWidth(), MinimizeAccumulatorWidth(),
                                  GiveUniqueNodeNames(), InferShapes()])


class CheckHwMapped(Transformation):
    """Every compute node must now be a FINN hardware layer; name the first one that is not."""

    def apply(self, model):
        from finn.util.fpgadataflow import is_fpgadataflow_node

        nodes = list(model.graph.node)
        hw = [i for i, n in enumerate(nodes) if is_fpgadataflow_node(n)]
        if not hw:
            raise BitCycleError("no node became a FINN hardware layer; the model has no binary matrix layers")
        for i, node in enumerate(nodes):
            if is_fpgadataflow_node(node):
                continue
            inside = hw[0] < i < hw[-1]
            if inside or node.op_type not in HOST_OPS:
                raise BitCycleError(
                    f"node {node.name} ({node.op_type}) has no FINN hardware layer and sits inside the "
                    "dataflow; BitCycle maps binary Linear/Conv, thresholds and MaxPool only: change that layer")
        return model, False


class InputQuantOnHost(Transformation):
    """Turn the leading Thresholding layer (the 8-bit input quantiser on raw pixels) back into a
    host-side MultiThreshold. In the fabric FINN stores its 2^b − 1 thresholds for every channel
    (FINN estimates 25,000 LUTs for SFC's 784 channels); on the host it is one
    ``clip(round(p·scale + offset))`` per pixel (driver.json's ``input.scale/offset``)."""

    def apply(self, model):
        from onnx import helper
        from qonnx.custom_op.registry import getCustomOp

        graph = model.graph
        for idx, node in enumerate(graph.node):
            if not node.op_type.startswith("Thresholding"):
                continue
            prod = model.find_producer(node.input[0])
            at_input = node.input[0] == graph.input[0].name or (
                prod is not None and prod.op_type in ("Transpose", "Reshape") and prod.input[0] == graph.input[0].name)
            if not at_input:
                return model, False
            inst = getCustomOp(node)
            ndim = len(model.get_tensor_shape(node.input[0]))
            odt = inst.get_nodeattr("outputDataType")
            new = helper.make_node("MultiThreshold", [node.input[0], node.input[1]], [node.output[0]],
                                   name=f"HostInputQuant_{node.name}", domain="qonnx.custom_op.general",
                                   out_dtype=odt, out_bias=float(inst.get_nodeattr("ActVal")),
                                   data_layout="NHWC" if ndim == 4 else "NC")
            graph.node.insert(idx, new)
            graph.node.remove(node)
            return model, True
        return model, False


class Specialize(Transformation):
    """FINN's SpecializeLayers for an FPGA part: each HW layer picks its HLS or RTL backend
    (BitSerialMVAU picks BitCycle's RTL)."""

    def __init__(self, fpgapart: str):
        super().__init__()
        self.fpgapart = fpgapart

    def apply(self, model):
        from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

        import bitcycle.compile.customop  # noqa: F401  (registers BitSerialMVAU with FINN)

        return _composite(model, [SpecializeLayers(self.fpgapart), GiveUniqueNodeNames()])


__all__ = ["TidyUp", "CheckSupportedQONNX", "AnnotateInput", "ToFinn", "StreamlineBnn", "MoveInputTransposeFirst",
           "ToXnorPopcount", "CheckStreamlined", "InferHwLayers", "InputQuantOnHost", "CheckHwMapped", "Specialize"]
