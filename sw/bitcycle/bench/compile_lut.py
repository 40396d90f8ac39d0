"""`bitcycle bench compile-lut`: synthesise generated BitSerialMVAU layers with Yosys
`synth_xilinx` (xc7) and fit the LUT model that ``lut_model`` holds (``BitSerialMVAU.lut_estimation``).

Each point is a one-node FINN graph with a ``BitSerialMVAU_rtl`` (random ±1 weights), whose RTL
backend generates the layer (Verilog wrapper + hw/rtl's bitcycle_mvau, exactly its file list). LUTs are
LUT1..6 plus LUTRAM (4 LUTs per RAM32M/RAM64M). Writes build/bench/compile_lut.json and .md with
the measured points, the least-squares fit and the model currently in ``lut_model``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from bitcycle.compile.lut_model import features
from bitcycle.errors import ToolNotFound

# (MW, MH, PE, SIMD, input datatype, output datatype, bits, acc_bits, noActivation)
POINTS = [
    (64, 8, 4, 16, "BINARY", "BINARY", 1, 8, 0),
    (32, 4, 2, 8, "INT8", "INT14", 8, 14, 1),
    (128, 16, 8, 8, "BINARY", "BINARY", 1, 9, 0),
    (256, 32, 8, 32, "BINARY", "BINARY", 1, 10, 0),
    (576, 64, 16, 24, "BINARY", "BINARY", 1, 11, 0),
    (784, 64, 32, 16, "INT8", "BINARY", 8, 18, 0),
    (27, 64, 16, 27, "INT8", "BINARY", 8, 14, 0),      # CNV's first conv
    (576, 64, 32, 64, "BINARY", "BINARY", 1, 11, 0),
    (1152, 128, 16, 48, "BINARY", "BINARY", 1, 12, 0),
    (512, 10, 10, 16, "BINARY", "INT11", 1, 11, 1),     # a classifier: raw sums
]


def _layer(point, gen_dir: Path):
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.util.basic import qonnx_make_model

    import bitcycle.compile.customop  # noqa: F401  (registers the op)

    mw, mh, pe, simd, idt, odt, bits, acc, no_act = point
    rng = np.random.default_rng(0)
    ins = ["x", "w"] + ([] if no_act else ["t"])
    node = helper.make_node("BitSerialMVAU_rtl", ins, ["y"], name="L", domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", MW=mw, MH=mh, PE=pe, SIMD=simd, inputDataType=idt,
                            outputDataType=odt, weightDataType="BIPOLAR", bits=bits, acc_bits=acc,
                            noActivation=no_act, bits_max=bits, code_gen_dir_ipgen=str(gen_dir))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, mw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, mh])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("w", np.where(rng.random((mw, mh)) > 0.5, 1.0, -1.0).astype(np.float32))
    model.set_tensor_datatype("w", DataType["BIPOLAR"])
    if not no_act:
        model.set_initializer("t", rng.integers(-mw // 4, mw // 4, size=(mh, 1)).astype(np.float32))
    inst = getCustomOp(model.graph.node[0])
    inst.generate_hdl(model, "xc7z020clg400-1", 10.0)
    return inst


def yosys_luts(log_text: str) -> dict:
    sec = log_text[log_text.rfind("Number of cells"):]
    cells = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(\w+)\s+(\d+)\s*$", sec, re.M)}
    lut = sum(v for k, v in cells.items() if re.fullmatch(r"LUT[1-6]", k))
    lutram = 4 * (cells.get("RAM32M", 0) + cells.get("RAM64M", 0))
    return {"LUT": lut + lutram, "LUT_logic": lut, "LUTRAM": lutram,
            "FF": sum(v for k, v in cells.items() if k.startswith("FD")),
            "RAMB": sum(v for k, v in cells.items() if k.startswith("RAMB"))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="build/bench", help="directory for compile_lut.json / .md")
    parser.add_argument("--points", type=int, default=len(POINTS), help="how many of the built-in points to run")


def run(args) -> int:
    from tqdm import tqdm

    from bitcycle.compile import lut_model

    yosys = shutil.which("yosys")
    if yosys is None:
        raise ToolNotFound("yosys not found on PATH: apt-get install yosys")
    out = Path(args.out)
    work = out / "compile_lut"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for point in tqdm(POINTS[: args.points], desc="yosys", unit="layer"):
        gen = work / "_".join(str(v) for v in point)
        inst = _layer(point, gen)
        files = [str(f) for f in inst.get_rtl_file_list(abspath=True)]
        script = f"read_verilog -sv {' '.join(files)}\nsynth_xilinx -top L_wrapper -family xc7 -flatten\nstat\n"
        (gen / "synth.ys").write_text(script)
        t0, c0 = time.time(), time.process_time()
        done = subprocess.run([yosys, "-q", "-s", "synth.ys", "-l", "synth.log"], cwd=gen, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"yosys failed on {point}: see {gen / 'synth.log'}")
        res = yosys_luts((gen / "synth.log").read_text())
        mw, mh, pe, simd, _, _, bits, acc, _ = point
        rows.append({"MW": mw, "MH": mh, "PE": pe, "SIMD": simd, "bits": bits, "acc_bits": acc, **res,
                     "model_LUT": inst.lut_estimation("xc7z020clg400-1"), "wall_s": round(time.time() - t0, 1),
                     "cpu_s_parent": round(time.process_time() - c0, 2)})
    a = np.array([features(r["PE"], r["SIMD"], r["acc_bits"], r["bits"], r["MW"]) for r in rows], float)
    y = np.array([r["LUT"] for r in rows], float)
    names = list(lut_model.LUT_COEF)
    coef = np.linalg.lstsq(a, y, rcond=None)[0].tolist() if len(rows) >= len(names) else None
    report = {"tool": "yosys synth_xilinx -family xc7", "points": rows,
              "fit": dict(zip(names, (round(c, 3) for c in coef))) if coef else None,
              "model_in_use": dict(lut_model.LUT_COEF)}
    (out / "compile_lut.json").write_text(json.dumps(report, indent=2) + "\n")
    md = ["| MW×MH | PE×SIMD | acc | LUT (Yosys) | model | FF |", "|---|---|---:|---:|---:|---:|"]
    md += [f"| {r['MW']}×{r['MH']} | {r['PE']}×{r['SIMD']} | {r['acc_bits']} | {r['LUT']} | {r['model_LUT']} | {r['FF']} |"
           for r in rows]
    (out / "compile_lut.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0
