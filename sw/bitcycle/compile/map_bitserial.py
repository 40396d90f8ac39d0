"""``MapToBitSerialMVAU``: FINN's binary-weight MVAUs become BitCycle engine layers (BitSerialMVAU).

FINN's XNOR MVAU thresholds popcounts (pop = (s + MW)/2); the engine thresholds the signed sum s,
so thresholds are rewritten as T' = 2T − MW and the ``·2 − MW`` compensation FINN leaves after a
last layer is absorbed: the mapped graph computes exactly what FINN's did.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.transformation.base import Transformation

from bitcycle.compile.bitserial_op import acc_bits_for, engine_bits
from bitcycle.errors import BitCycleError
from bitcycle.golden.accwidth import signed_width
from bitcycle.golden.bitserial import MAX_BITS


class MapToBitSerialMVAU(Transformation):
    """Each FINN MVAU with ±1 weights and an integer/binary input of ≤ bits_max bits becomes a
    BitSerialMVAU (thresholds moved to the signed-sum domain, the XNOR compensation after a
    last layer absorbed). Others (e.g. 8-bit weights) stay FINN MVAUs."""

    def __init__(self, bits_min: int = 1, bits_max: int = MAX_BITS):
        super().__init__()
        self.bits_min, self.bits_max = bits_min, bits_max

    def apply(self, model):
        from qonnx.custom_op.registry import getCustomOp

        graph = model.graph
        for idx, node in enumerate(list(graph.node)):
            if node.op_type != "MVAU":
                continue
            inst = getCustomOp(node)
            w = model.get_initializer(node.input[1])
            xnor = inst.get_nodeattr("binaryXnorMode") == 1
            w_pm = (2 * w - 1) if xnor else w
            if not np.all(np.abs(w_pm) == 1):
                continue  # not binary weights: FINN's own MVAU serves it
            in_dt = DataType[inst.get_nodeattr("inputDataType")]
            bits = engine_bits(in_dt)
            if bits > self.bits_max:
                continue
            mw = inst.get_nodeattr("MW")
            acc_bits = acc_bits_for(mw, in_dt)
            inputs = [node.input[0], node.input[1]]
            model.set_initializer(node.input[1], w_pm.astype(np.float32))
            model.set_tensor_datatype(node.input[1], DataType["BIPOLAR"])
            out_tensor = node.output[0]
            removed = []
            no_act = inst.get_nodeattr("noActivation")
            odt = inst.get_nodeattr("outputDataType")
            if not no_act:
                thr = model.get_initializer(node.input[2])
                if xnor:
                    thr = 2 * thr - mw
                model.set_initializer(node.input[2], thr.astype(np.float32))
                bound = int(np.abs(thr).max())
                tbits = max(2, signed_width(-bound, bound))  # signed; never BIPOLAR (no 0 in it)
                model.set_tensor_datatype(node.input[2], DataType[f"INT{tbits}"])
                inputs.append(node.input[2])
            elif xnor:
                # popcount → signed sum: absorb the Mul(2) and Add(−MW) FINN left after the layer
                mul = model.find_consumer(out_tensor)
                add = model.find_consumer(mul.output[0]) if mul is not None and mul.op_type == "Mul" else None
                ok = (mul is not None and mul.op_type == "Mul" and add is not None and add.op_type == "Add"
                      and np.all(model.get_initializer(mul.input[1]) == 2)
                      and np.all(model.get_initializer(add.input[1]) == -mw))
                if not ok:
                    raise BitCycleError(f"layer {node.name}: expected the XNOR compensation ·2 − {mw} after it; "
                                        "the graph was changed between FINN passes — re-run the whole flow")
                out_tensor = add.output[0]
                removed = [mul, add]
            if no_act:  # raw sums leave as INT<acc_bits>: the saturated sum's own range (±MW for XNOR)
                cur = DataType[odt]
                if xnor or not (cur.is_integer() and cur.signed() and cur.bitwidth() >= acc_bits):
                    odt = f"INT{acc_bits}"
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            for key in ("binaryXnorMode", "weightDataType", "outputDataType", "accDataType", "mem_mode"):
                attrs.pop(key, None)
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
            new = helper.make_node("BitSerialMVAU", inputs, [out_tensor], name=node.name,
                                   domain="finn.custom_op.fpgadataflow", **attrs,
                                   weightDataType="BIPOLAR", outputDataType=odt, mem_mode="internal_embedded",
                                   accDataType=f"INT{acc_bits}", binaryXnorMode=0, bits=bits,
                                   bits_min=self.bits_min, bits_max=self.bits_max, acc_bits=acc_bits)
            graph.node.insert(idx, new)
            graph.node.remove(node)
            for r in removed:
                graph.node.remove(r)
            model.set_tensor_datatype(out_tensor, DataType[odt])
            return model, True  # node list changed: FINN's transform loop calls us again
        return model, False
