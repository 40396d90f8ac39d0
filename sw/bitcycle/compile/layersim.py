"""One generated BitSerialMVAU_rtl layer, exactly as the vendor flow receives it (its
``get_rtl_file_list``), built in Verilator and compared beat for beat with the node's
``execute_node`` (the golden model) on random vectors of its input datatype, then timed with the
input always valid and the output always ready against ``get_exp_cycles``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitcycle.compile import verilate as V
from bitcycle.golden.cycles import array_cycles
from bitcycle.hwif.codes import MODE_FORWARD


def random_inputs(dt, n: int, mw: int, rng) -> np.ndarray:
    """n vectors of datatype ``dt`` (BINARY: the bipolar codes 0/1), the extremes first."""
    lo, hi = int(dt.min()), int(dt.max())
    x = rng.integers(lo, hi + 1, size=(n, mw))
    if n >= 3:
        x[0], x[1] = lo, hi
    return x


def layer_io(inst, model, xs: np.ndarray) -> np.ndarray:
    """The node's own outputs (execute_node) for input vectors xs [n, MW] → [n, MH]."""
    node = inst.onnx_node
    mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
    outs = []
    for x in xs:
        ctx = {node.input[0]: x.reshape(1, mw).astype(np.float32), node.output[0]: np.zeros((1, mh), np.float32)}
        for name in node.input[1:]:
            ctx[name] = model.get_initializer(name)
        inst.execute_node(ctx, model.graph)
        outs.append(np.asarray(ctx[node.output[0]]).reshape(-1))
    return np.rint(np.array(outs)).astype(np.int64)


def check_layer(model, node, work: Path, vectors: int = 6, seed: int = 0, gap: float = 0.3, bp: float = 0.3,
                timing_vectors: int = 4) -> dict:
    """Build the node's generated files, run them bit-exact against the node; returns figures."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    work = Path(work)
    mw, mh, pe, simd = (inst.get_nodeattr(k) for k in ("MW", "MH", "PE", "SIMD"))
    idt, odt = DataType[inst.get_nodeattr("inputDataType")], DataType[inst.get_nodeattr("outputDataType")]
    exe = V.build(inst.get_nodeattr("gen_top_module"), inst.get_rtl_file_list(abspath=True), work / "build")
    rng = np.random.default_rng(seed)
    xs = random_inputs(idt, vectors, mw, rng)
    want = layer_io(inst, model, xs)
    beats = V.pack(xs, idt.bitwidth(), simd)
    nf = mh // pe
    got_beats, _ = V.run(exe, beats, vectors * nf, work / "run", gap=gap, bp=bp, seed=seed + 1)
    got = V.unpack(got_beats, odt.bitwidth(), pe, odt.signed()).reshape(vectors, mh)
    bad = np.nonzero(np.any(got != want, axis=1))[0]
    # timing: input always valid, output always ready
    tx = random_inputs(idt, timing_vectors, mw, rng)
    _, cyc = V.run(exe, V.pack(tx, idt.bitwidth(), simd), timing_vectors * nf, work / "timing")
    ends = cyc[nf - 1::nf]
    measured = float(np.mean(np.diff(ends))) if len(ends) > 1 else float(ends[0])
    bits = inst.get_nodeattr("bits")
    expected = array_cycles(MODE_FORWARD, bits, mh, mw, 1, pe, simd)  # per vector, as get_exp_cycles
    return {"layer": node.name, "MW": mw, "MH": mh, "PE": pe, "SIMD": simd, "bits": bits,
            "vectors": vectors, "mismatches": int(len(bad)), "first_bad": int(bad[0]) if len(bad) else None,
            "cycles_per_vector": measured, "expected_cycles_per_vector": expected,
            "latency_first_vector": int(ends[0]), "got": got, "want": want}
