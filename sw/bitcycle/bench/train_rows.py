"""bench train's row specs and the two cost accountings of a row.

A row is one training run. Its SPEC is either

    GRAD                 a grad-bits SPEC (bitcycle.schedule), binary (W1A1) forward pass:
                         BitCycle's gradient cycling, e.g. ``cosine:2-8x8``, ``fixed:8``, ``fp32``
    fwd:FWD+GRAD         CycleBNN's / CPT's recipe: the forward W/A precision follows FWD for the
                         first ``--forward-fraction`` of the steps (binary afterwards), the gradient
                         follows GRAD, e.g. ``fwd:cosine:2-6x4+fixed:8``

``--cyclebnn 2-6,3-8`` is short for ``fwd:cosine:2-6xC+fixed:8,fwd:cosine:3-8xC+fixed:8`` with
C = ``--cyclebnn-cycles``.

Costs of a row, both exact for the run:

* CycleBNN's own cost line, per step with forward bits b (1 = binary) and gradient bits g
  (32 = float): ``fw = b·b/32/32; eb = b·g/32/32; gc = eb; cr = (fw + eb + gc)/3`` — the cost
  relative to FP32 training, the same for every layer; a run's ``cr`` is its mean over the steps
  (every step has the same batch). It ignores the layer shapes and the 8-bit first layer.
* BitCycle's accounting (``bitcycle.train.ops``): BOPs per layer from its MACs (``train_bops``,
  ``saving_vs_fp32``) and the engine's bit-planes. Here every row is also compared with one common
  reference, the W1A1 net with fixed 8-bit gradients over the same steps — the trainer's own
  "vs fixed:8" keeps each run's forward widths, which for a CycleBNN row is itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from bitcycle.errors import BitCycleError
from bitcycle.schedule import FP32_BITS, parse_grad_bits

FWD_PREFIX = "fwd:"
ROW_SPEC_HELP = ("comma list of row SPECs: GRAD (a grad-bits SPEC, binary forward: fp32, fixed:B, cosine:L-HxC) "
                 "or fwd:FWD+GRAD (CycleBNN's forward W/A cycling, e.g. fwd:cosine:2-6x4+fixed:8)")
CYCLEBNN_GRAD = "fixed:8"  # CycleBNN and CPT keep the gradient at a fixed 8 bits


@dataclass(frozen=True)
class RowSpec:
    grad: str                  # canonical grad-bits SPEC
    forward: str | None = None  # canonical forward-bits SPEC; None: binary forward pass

    def __str__(self) -> str:
        return self.grad if self.forward is None else f"{FWD_PREFIX}{self.forward}+{self.grad}"

    @property
    def recipe(self) -> str:
        return "BitCycle gradient cycling" if self.forward is None else "CycleBNN forward cycling"


def parse_row_spec(text: str) -> RowSpec:
    """GRAD or fwd:FWD+GRAD (module docstring); bad input → BitCycleError naming the fix."""
    t = str(text).strip().lower()
    if not t.startswith(FWD_PREFIX):
        return RowSpec(str(parse_grad_bits(t)))
    fwd, plus, grad = t[len(FWD_PREFIX):].partition("+")
    if not plus or not fwd or not grad:
        raise BitCycleError(f"bench train: row spec {text!r} needs both parts, fwd:FWD+GRAD, e.g. fwd:cosine:2-6x4+fixed:8")
    f = parse_grad_bits(fwd)
    if f.is_fp32 or f.b_max > 16:
        raise BitCycleError(f"bench train: forward bits {fwd!r} go up to 16 (1 = binary); e.g. fwd:cosine:2-6x4+fixed:8")
    return RowSpec(str(parse_grad_bits(grad)), str(f))


def cyclebnn_specs(ranges: str, cycles: int) -> list[RowSpec]:
    """``--cyclebnn 2-6,3-8``: forward cosine L→H in ``cycles`` cycles, gradient fixed at 8 bits."""
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
        raise BitCycleError(f"bench train: --cyclebnn-cycles {cycles!r} must be an integer >= 1")
    out = []
    for r in (s.strip() for s in ranges.split(",")):
        if r:
            lo, dash, hi = r.partition("-")
            if not (dash and lo.isdigit() and hi.isdigit()):
                raise BitCycleError(f"bench train: --cyclebnn range {r!r} is not L-H; write e.g. --cyclebnn 2-6,3-8")
            out.append(parse_row_spec(f"{FWD_PREFIX}cosine:{lo}-{hi}x{cycles}+{CYCLEBNN_GRAD}"))
    return out


def run_name(model: str, spec: str) -> str:
    """``lfc-cosine2_8x8``, ``lfc-fwd_cosine2_6x4-fixed8``: a directory name for one row."""
    row = parse_row_spec(spec)
    if row.forward is None:
        return f"{model}-{_dir_part(row.grad)}"
    return f"{model}-fwd_{_dir_part(row.forward)}-{_dir_part(row.grad)}"


def _dir_part(spec: str) -> str:
    return spec.replace(":", "").replace("-", "_")


def cyclebnn_step_cost(b: int, g: int) -> Fraction:
    """CycleBNN's line for one step: fw = b·b/32/32; eb = b·g/32/32; gc = eb; cr = (fw+eb+gc)/3."""
    fw = Fraction(b * b, 32 * 32)
    eb = Fraction(b * g, 32 * 32)
    gc = eb
    return (fw + eb + gc) / 3


def cyclebnn_run_cost(forward_bits_per_step: list[int], grad_bits_per_step: list[int]) -> Fraction:
    """A run's cr vs FP32: the mean of the steps' cr (every step has the same batch)."""
    if len(forward_bits_per_step) != len(grad_bits_per_step) or not grad_bits_per_step:
        raise BitCycleError("bench train: CycleBNN cost needs one forward and one gradient bit-width per step")
    total = sum((cyclebnn_step_cost(b, min(g, FP32_BITS)) for b, g in zip(forward_bits_per_step, grad_bits_per_step)),
                Fraction(0))
    return total / len(grad_bits_per_step)


def row_costs(metrics: dict, batch_size: int) -> dict:
    """Both accountings of a finished run, from its metrics (``bitcycle.train.trainer.train``)."""
    from bitcycle.train.ops import LayerOps, run_costs

    grad = metrics["bits_per_step"]
    fwd = metrics.get("forward_bits_per_step") or [1] * len(grad)
    cr = cyclebnn_run_cost(fwd, grad)
    layers = [LayerOps(**row) for row in metrics["layers"]]
    ref = run_costs(layers, [8] * len(grad), batch_size)  # W1A1, fixed 8-bit gradients, same steps
    eng_total = metrics["engine_forward_planes"] + metrics["engine_backward_planes"]
    ref_total = ref["engine_forward_planes"] + ref["engine_backward_planes"]
    return {
        "forward_bits_per_step": fwd,
        "mean_forward_bits": sum(fwd) / len(fwd),
        "cyclebnn_cost_ratio": float(cr),
        "cyclebnn_cost_ratio_fraction": f"{cr.numerator}/{cr.denominator}",
        "cyclebnn_saving_vs_fp32": float(1 - cr),
        "bops_saving_vs_w1a1_fixed8": 1.0 - metrics["train_bops"] / ref["train_bops"],
        "engine_planes": eng_total,
        "engine_planes_w1a1_fixed8": ref_total,
        "engine_backward_saving_vs_w1a1_fixed8": 1.0 - metrics["engine_backward_planes"] / ref["engine_backward_planes"],
        "engine_saving_vs_w1a1_fixed8": 1.0 - eng_total / ref_total,
    }


ENGINE_NOTE = (
    "Which is cheaper on BitCycle's engine, and why: the bit-serial array takes one operand binary and walks "
    "the bit-planes of the other, so a product costs as many passes as the integer operand has bits (both "
    "widths multiplied when neither is binary) - per MAC the same count as BOPs, hence the equal BOP and "
    "engine-plane columns. A gradient-cycling row keeps W and A binary: forward 1 plane (8 in the 8-bit first "
    "layer), each backward product b_g <= 8. A CycleBNN row, in its cycling steps, has b_f-bit W and b_f-bit A: "
    "no operand is binary, forward b_f^2 and each backward product 8*b_f planes, so each such step costs more "
    "than a W1A1 fixed:8 step and gradient cycling is the cheaper recipe. The multi-bit forward is training-only: "
    "both recipes deploy the same W1A1 net, whose forward is binary anyway. CycleBNN's own line weighs every "
    "layer alike (no 8-bit first layer, every layer with all three products), so its ranking of rows far apart "
    "in forward and gradient bits (e.g. fp32 gradients vs forward 3-8) can differ from the per-layer count.")
