"""The compile flow: QONNX → FINN → streamlined → XNOR → HW layers → BitCycle engine → folded,
specialised graph, with every executable intermediate graph checked bit-exact against the
reference model's integer outputs.

:func:`run_steps` runs the named steps of a :class:`~bitcycle.compile.config.CompileConfig`
(``bitcycle.compile.steps``) from ``start_step`` to ``stop_step``, FINN-builder style: after each
step the graph goes to ``intermediate_models/<step>.onnx``, and a run with ``start_step`` begins
from the previous step's file. :func:`run_flow` is the whole flow in one call.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bitcycle.errors import BitCycleError


@dataclass
class FlowResult:
    model: object                       # graph after the last step run (folded, specialised for a full run)
    engine_model: object                # the engine-mapped graph (executable, golden-model layers), if reached
    stages: dict = field(default_factory=dict)   # stage → {"step", "nodes", "checked", "mismatches",
    #                                              "exec_mode"[, "rtlsim_checked"]}
    resources: dict | None = None       # FINN estimates (when the last step run leaves HW layers)
    steps_run: list = field(default_factory=list)


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


def check_stage(name: str, model, pixels: np.ndarray, expected: np.ndarray,
                cause: str = "a FINN pass changed the model's arithmetic") -> int:
    got = execute(model, pixels)
    exp = expected.reshape(len(expected), -1)
    if got.shape != exp.shape:
        raise BitCycleError(f"stage {name}: graph gives outputs of shape {got.shape[1:]}, torch {exp.shape[1:]}")
    bad = np.nonzero(np.any(got != exp, axis=1))[0]
    if len(bad):
        i = int(bad[0])
        raise BitCycleError(
            f"stage {name}: graph output differs from torch on {len(bad)}/{len(exp)} images (first: image {i}, "
            f"{int(np.sum(got[i] != exp[i]))} values); {cause}")
    return len(exp)


def check_stage_rtlsim(name: str, model, pixels: np.ndarray, expected: np.ndarray, work: Path | None) -> int:
    """The stage's check again on a copy of its graph with exec_mode rtlsim: every BitSerialMVAU and
    BitCycleMaxPool through its generated RTL in Verilator (built in ``work/<node>/``), the rest as before."""
    from bitcycle.compile.rtlsim_exec import prepare_rtlsim

    sim = prepare_rtlsim(copy.deepcopy(model), work)
    return check_stage(f"{name} (exec_mode rtlsim)", sim, pixels, expected,
                       cause=f"the generated RTL computes differently from the golden model (its files and "
                             f"Verilator builds: {work}/<layer>/)")


def intermediate_model(directory: Path, step: str) -> Path:
    return Path(directory) / f"{step}.onnx"


def start_model(cfg, source_model, resume_dir: Path | None):
    """The input of ``cfg.start_step``: the source model for the first step, else the previous step's
    intermediate model from ``resume_dir`` (one line naming the missing file and how to make it)."""
    from qonnx.core.modelwrapper import ModelWrapper

    import bitcycle.compile.customop  # noqa: F401  (an engine graph holds BitSerialMVAU nodes)

    if cfg.start_step is None or cfg.steps.index(cfg.start_step) == 0:
        return copy.deepcopy(source_model)
    prev = cfg.steps[cfg.steps.index(cfg.start_step) - 1]
    path = intermediate_model(resume_dir, prev) if resume_dir is not None else None
    if path is None or not path.is_file():
        raise BitCycleError(f"--start-step {cfg.start_step} starts from {path or 'intermediate_models/' + prev + '.onnx'}, "
                            f"which does not exist: run the flow up to {prev} first (e.g. without --start-step)")
    return ModelWrapper(str(path))


def run_steps(source_model, cfg, pixels: np.ndarray, expected: np.ndarray, progress: bool = True,
              save_dir: Path | None = None, resume_dir: Path | None = None,
              rtlsim_dir: Path | None = None) -> FlowResult:
    """Run cfg's steps from start_step to stop_step; check each executable step's graph on ``pixels``
    against ``expected``; save each graph to ``save_dir/<step>.onnx`` (if given and
    cfg.save_intermediate_models). ``resume_dir`` holds the intermediate models a start_step resumes from."""
    from tqdm import tqdm

    from bitcycle.compile.steps import steps_to_run

    cfg.validate()
    if cfg.rtlsim_check and rtlsim_dir is None:
        raise BitCycleError("rtlsim_check needs a directory for the generated RTL (run_steps' rtlsim_dir)")
    todo = steps_to_run(cfg.steps, cfg.start_step, cfg.stop_step)
    model = start_model(cfg, source_model, resume_dir)
    result = FlowResult(model=None, engine_model=None)
    bar = tqdm(todo, desc="compile", unit="step", disable=not progress, leave=False)
    for step in bar:
        bar.set_postfix_str(step.name)
        model = step.fn(model, cfg)
        info = {"step": step.name, "nodes": [n.op_type for n in model.graph.node], "checked": 0, "mismatches": 0}
        if step.check and len(pixels):
            info["checked"] = check_stage(step.stage, model, pixels, expected)
            info["exec_mode"] = "python"  # every node's Python model (BitSerialMVAU: the golden model)
        if step.stage == "engine" and cfg.rtlsim_check and len(pixels):
            n = min(int(cfg.rtlsim_check), len(pixels))
            info["rtlsim_checked"] = check_stage_rtlsim(step.stage, model, pixels[:n], expected[:n], rtlsim_dir)
            info["exec_mode"] = "python+rtlsim"  # all images in Python, the first rtlsim_checked in Verilator
        result.stages[step.stage] = info
        result.steps_run.append(step.name)
        if save_dir is not None and cfg.save_intermediate_models:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
            model.save(str(intermediate_model(save_dir, step.name)))
        if step.stage == "engine":
            result.engine_model = copy.deepcopy(model)
    result.model = model
    if any(n.domain.startswith("finn.custom_op.fpgadataflow") for n in model.graph.node) and \
            result.steps_run[-1] in ("step_specialize", "step_fold"):
        from bitcycle.compile.folding import resolve_part, resource_report

        result.resources = resource_report(model, resolve_part(cfg.part), float(cfg.clock_mhz))
    return result


def run_flow(qonnx_model, pixel_max: float, pixels: np.ndarray, expected: np.ndarray, fpgapart: str,
             fold_kwargs: dict, bits_max: int = 16, progress: bool = True, save_dir=None,
             input_quant: str = "host") -> FlowResult:
    """Every step, each executable graph checked on ``pixels`` against ``expected`` (the flow before
    CompileConfig; ``fold_kwargs``: FoldForTarget's target_fps or lut_budget, and clock_mhz)."""
    from bitcycle.compile.config import CompileConfig

    unknown = sorted(set(fold_kwargs) - {"target_fps", "lut_budget", "clock_mhz"})
    if unknown:
        raise BitCycleError(f"fold_kwargs: unknown key(s) {', '.join(unknown)}; use target_fps, lut_budget, clock_mhz")
    cfg = CompileConfig(part=fpgapart, pixel_max=pixel_max, bits_max=bits_max, input_quant=input_quant,
                        clock_mhz=float(fold_kwargs.get("clock_mhz", 100.0)),
                        target_fps=fold_kwargs.get("target_fps"), lut_budget=fold_kwargs.get("lut_budget"))
    return run_steps(qonnx_model, cfg, pixels, expected, progress=progress, save_dir=save_dir)
