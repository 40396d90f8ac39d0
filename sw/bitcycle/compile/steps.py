"""The compile flow's steps, FINN-builder style: ``step_*(model, cfg) -> model``, one job each, in
the order of :data:`STEP_NAMES` (``CompileConfig.steps`` picks and orders them by name).

Each step belongs to a *stage* (the name its graph is reported under in ``compile.json``) and says
whether its graph is executable with ``execute_onnx`` — those are checked bit-exact against the
reference model's integer outputs after the step (graphs after ``SpecializeLayers`` hold FINN HLS
layers whose simulation needs Vitis HLS/Vivado; the semantics are fixed before that, and folding
does not change them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from qonnx.transformation.base import Transformation

from bitcycle.errors import BitCycleError


@dataclass(frozen=True)
class Step:
    name: str
    fn: Callable
    stage: str
    check: bool  # executable with execute_onnx: checked bit-exact after the step


STEPS: dict[str, Step] = {}


def _step(stage: str, check: bool = True):
    def register(fn):
        STEPS[fn.__name__] = Step(fn.__name__, fn, stage, check)
        return fn
    return register


class _Bounded(Transformation):
    """``inner`` under ModelWrapper.transform's loop (apply again while it reports a change), with a
    bound: a pass that never stops changing the graph is a bug, not a long compile."""

    def __init__(self, inner: Transformation, limit: int):
        super().__init__()
        self.inner, self.limit, self.rounds = inner, limit, 0

    def apply(self, model):
        self.rounds += 1
        if self.rounds > self.limit:
            raise BitCycleError(f"pass {type(self.inner).__name__} still changes the graph after {self.limit} "
                                "rounds: it is not idempotent (a bug in the pass, please report it)")
        return self.inner.apply(model)


def apply_passes(model, passes: list):
    """Each pass to its fixed point (FINN's contract: re-applied while it reports ``changed``)."""
    for p in passes:
        # one round per node is the most a converging pass needs (MapToBitSerialMVAU maps one per call)
        model = model.transform(_Bounded(p, len(model.graph.node) + 2))
    return model


@_step("qonnx")
def step_tidy_qonnx(model, cfg):
    """Reject what BitCycle cannot compile (unknown ops, float weights), then FINN's tidy-up."""
    from bitcycle.compile import passes as P

    return apply_passes(model, [P.CheckSupportedQONNX(), P.TidyUp()])


@_step("finn")
def step_to_finn(model, cfg):
    """Integer pixel input (UINT for 0..pixel_max), QONNX → FINN-ONNX."""
    from bitcycle.compile import passes as P

    if cfg.pixel_max is None:
        raise BitCycleError("step_to_finn needs the config's pixel_max (the largest raw pixel code)")
    return apply_passes(model, [P.AnnotateInput(cfg.pixel_max), P.ToFinn()])


@_step("streamlined")
def step_streamline(model, cfg):
    """FINN's streamlining: BatchNorm and scales into integer thresholds (CNNs: convs lowered, NHWC)."""
    from bitcycle.compile import passes as P

    return apply_passes(model, [P.StreamlineBnn()])


@_step("xnor")
def step_to_xnor(model, cfg):
    """Binary MatMuls → XnorPopcountMatMul with integer thresholds; only integer layers may remain."""
    from bitcycle.compile import passes as P

    return apply_passes(model, [P.ToXnorPopcount(), P.CheckStreamlined()])


@_step("hw")
def step_to_hw_layers(model, cfg):
    """FINN HW layers (MVAU, Thresholding, sliding window, pool); the input quantiser on the host
    unless ``input_quant`` = fabric; every compute node must now be a HW layer."""
    from bitcycle.compile import passes as P

    host = [P.InputQuantOnHost()] if cfg.input_quant == "host" else []
    return apply_passes(model, [P.InferHwLayers(), *host, P.CheckHwMapped()])


@_step("engine")
def step_map_to_engine(model, cfg):
    """Every ±1-weight MVAU → BitSerialMVAU (BitCycle's engine, executed by the golden model); every
    MaxPool of ±1 data → BitCycleMaxPool (an OR of the window's bits, hw/rtl's bitcycle_maxpool)."""
    from bitcycle.compile.map_bitserial import MapToBitSerialMVAU
    from bitcycle.compile.maxpool_op import MapToBitCycleMaxPool

    return apply_passes(model, [MapToBitSerialMVAU(bits_max=cfg.bits_max), MapToBitCycleMaxPool()])


@_step("specialized", check=False)
def step_specialize(model, cfg):
    """FINN's SpecializeLayers: BitSerialMVAU → BitSerialMVAU_rtl, FINN's HLS/RTL for the rest."""
    from bitcycle.compile import passes as P
    from bitcycle.compile.folding import resolve_part

    return apply_passes(model, [P.Specialize(resolve_part(cfg.part))])


@_step("folded", check=False)
def step_fold(model, cfg):
    """PE/SIMD for the folding target (legal values only), FINN's width converters where producer
    PE ≠ consumer SIMD (BitCycle's bitcycle_dwc at the widths FINN's cannot be simulated at, dwc_op),
    specialised again (the converters are new HW layers)."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC

    from bitcycle.compile import passes as P
    from bitcycle.compile.dwc_op import MapToBitCycleDWC
    from bitcycle.compile.folding import FoldForTarget, resolve_part

    part = resolve_part(cfg.part)
    return apply_passes(model, [FoldForTarget(part, **cfg.fold_kwargs()), InsertDWC(), MapToBitCycleDWC(),
                                P.Specialize(part)])


STEP_NAMES = tuple(STEPS)


def check_step_names(steps: list[str], start: str | None = None, stop: str | None = None) -> None:
    """One line for an unknown step, a start/stop step not in ``steps``, or a start after the stop."""
    valid = ", ".join(STEP_NAMES)
    if not steps:
        raise BitCycleError(f"the step list is empty; valid steps: {valid}")
    for name in steps:
        if name not in STEPS:
            raise BitCycleError(f"unknown compile step {name!r}; valid steps: {valid}")
    if len(set(steps)) != len(steps):
        raise BitCycleError(f"a compile step is listed twice in {', '.join(steps)}")
    for flag, bound in (("--start-step", start), ("--stop-step", stop)):
        if bound is not None and bound not in steps:
            raise BitCycleError(f"{flag} {bound!r} is not a step of this flow; valid steps: {', '.join(steps)}")
    if start is not None and stop is not None and steps.index(start) > steps.index(stop):
        raise BitCycleError(f"--start-step {start} comes after --stop-step {stop}; order: {', '.join(steps)}")


def steps_to_run(steps: list[str], start: str | None, stop: str | None) -> list[Step]:
    check_step_names(steps, start, stop)
    i = steps.index(start) if start else 0
    j = steps.index(stop) if stop else len(steps) - 1
    return [STEPS[n] for n in steps[i:j + 1]]
