"""The compile flow: QONNX → FINN → streamlined → XNOR → HW layers → BitCycle engine → folded,
specialised graph, with every executable intermediate graph checked bit-exact against the torch
model's integer outputs.

``Stage`` lists the passes in order; ``run_flow`` applies them and checks each stage's graph with
``execute_onnx`` on the given images (graphs after ``SpecializeLayers`` hold FINN HLS layers whose
simulation needs Vitis HLS/Vivado; the semantics are fixed before that, and folding does not change
them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bitcycle.errors import BitCycleError


@dataclass
class Stage:
    name: str
    passes: list
    check: bool = True  # executable with execute_onnx (before SpecializeLayers)


@dataclass
class FlowResult:
    model: object                       # final (folded, specialised) ModelWrapper
    engine_model: object                # the engine-mapped graph (executable, golden-model layers)
    stages: dict = field(default_factory=dict)   # name → {"nodes": [...], "checked": n, "mismatches": m}
    resources: dict | None = None


def stages(pixel_max: float, fpgapart: str, fold_kwargs: dict, bits_max: int = 16,
           input_quant: str = "host") -> list[Stage]:
    from bitcycle.compile import passes as P
    from bitcycle.compile.customop import MapToBitCycleMaxPool, MapToBitSerialMVAU
    from bitcycle.compile.folding import FoldForTarget
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC  # producer PE ≠ consumer SIMD: FINN's width converter

    return [
        Stage("qonnx", [P.CheckSupportedQONNX(), P.TidyUp()]),
        Stage("finn", [P.AnnotateInput(pixel_max), P.ToFinn()]),
        Stage("streamlined", [P.StreamlineBnn()]),
        Stage("xnor", [P.ToXnorPopcount(), P.CheckStreamlined()]),
        Stage("hw", [P.InferHwLayers()] + ([P.InputQuantOnHost()] if input_quant == "host" else [])
              + [P.CheckHwMapped()]),
        Stage("engine", [MapToBitSerialMVAU(bits_max=bits_max), MapToBitCycleMaxPool()]),
        Stage("specialized", [P.Specialize(fpgapart)], check=False),
        Stage("folded", [FoldForTarget(fpgapart, **fold_kwargs), InsertDWC(), P.Specialize(fpgapart)], check=False),
    ]


def execute(model, pixels: np.ndarray) -> np.ndarray:
    """Run a graph image by image with qonnx's execute_onnx; [N, outputs] float64."""
    import qonnx.core.onnx_exec as oxe

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    ishape = model.get_tensor_shape(iname)
    outs = []
    for img in pixels:
        out = oxe.execute_onnx(model, {iname: np.asarray(img, dtype=np.float32).reshape(ishape)})[oname]
        outs.append(np.asarray(out, dtype=np.float64).reshape(-1))
    return np.stack(outs)


def check_stage(name: str, model, pixels: np.ndarray, expected: np.ndarray) -> int:
    got = execute(model, pixels)
    exp = expected.reshape(len(expected), -1)
    if got.shape != exp.shape:
        raise BitCycleError(f"stage {name}: graph gives outputs of shape {got.shape[1:]}, torch {exp.shape[1:]}")
    bad = np.nonzero(np.any(got != exp, axis=1))[0]
    if len(bad):
        i = int(bad[0])
        raise BitCycleError(
            f"stage {name}: graph output differs from torch on {len(bad)}/{len(exp)} images (first: image {i}, "
            f"{int(np.sum(got[i] != exp[i]))} values); a FINN pass changed the model's arithmetic")
    return len(exp)


def run_flow(qonnx_model, pixel_max: float, pixels: np.ndarray, expected: np.ndarray, fpgapart: str,
             fold_kwargs: dict, bits_max: int = 16, progress: bool = True, save_dir=None,
             input_quant: str = "host") -> FlowResult:
    """Apply every stage; check the executable ones on ``pixels`` against ``expected``."""
    from tqdm import tqdm

    from bitcycle.compile.folding import resource_report

    model = qonnx_model
    result = FlowResult(model=None, engine_model=None)
    if input_quant not in ("host", "fabric"):
        raise BitCycleError(f"input_quant must be 'host' or 'fabric', got {input_quant!r}")
    all_stages = stages(pixel_max, fpgapart, fold_kwargs, bits_max, input_quant)
    bar = tqdm(all_stages, desc="compile", unit="stage", disable=not progress, leave=False)
    for stage in bar:
        bar.set_postfix_str(stage.name)
        for p in stage.passes:
            model = model.transform(p)
        info = {"nodes": [n.op_type for n in model.graph.node], "checked": 0, "mismatches": 0}
        if stage.check and len(pixels):
            info["checked"] = check_stage(stage.name, model, pixels, expected)
        result.stages[stage.name] = info
        if save_dir is not None:
            model.save(str(save_dir / f"{len(result.stages):02d}_{stage.name}.onnx"))
        if stage.name == "engine":
            import copy

            result.engine_model = copy.deepcopy(model)
    result.model = model
    clock = float(fold_kwargs.get("clock_mhz", 100.0))
    result.resources = resource_report(model, fpgapart, clock)
    return result
