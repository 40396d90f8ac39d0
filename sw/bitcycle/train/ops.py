"""Training-op accounting: MACs per layer and step, and two cost models of a training run.

A binary layer with M multiply-accumulates per sample runs three products per training step:

    forward          y  = W·x      binary W  ×  b_a-bit x   (b_a = 1, or 8 for the first layer)
    backward-data    dx = Wᵀ·dy    binary W  ×  b_g-bit dy  (not needed by the first layer)
    backward-weight  dW = dy·xᵀ    b_a-bit x ×  b_g-bit dy

Cost models (per MAC):
* ``bops`` — CycleBNN's bit operations, the product of the two operand widths:
  b_w·b_a + b_w·b_g + b_a·b_g, i.e. b_fwd² + 2·b_fwd·b_grad for a W1A1 layer; the FP32 training
  baseline is 32·32 for every product (3·32² for a layer with all three).
* ``engine`` — BitCycle's bit-serial engine: one operand binary, the array walks the bit-planes
  of the other, so a product costs as many passes as the integer operand has bits: forward b_a,
  backward-data b_g, backward-weight b_g. Where neither operand is binary (the first layer's 8-bit
  x in backward-weight, an 8-bit last layer) it walks both: the product of the widths.

Units: BOPs are bit-operations; engine figures are "MAC bit-planes" (divide by the array's
PE·SIMD for cycles). Both are exact integers for a run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

FP32_BITS = 32


@dataclass(frozen=True)
class LayerOps:
    name: str
    kind: str               # "linear" | "conv"
    macs: int               # multiply-accumulates of one forward pass for ONE sample
    weight_bits: int        # b_w
    act_bits: int           # b_a of the layer's input
    needs_dx: bool          # False for the first layer: nothing upstream needs its input gradient

    def bops(self, b_g: int) -> int:
        per = self.weight_bits * self.act_bits + self.act_bits * b_g
        if self.needs_dx:
            per += self.weight_bits * b_g
        return self.macs * per

    def fp32_bops(self) -> int:
        return self.macs * FP32_BITS * FP32_BITS * (3 if self.needs_dx else 2)

    def engine_planes(self, b_g: int) -> tuple[int, int]:
        """(forward, backward) bit-planes for one sample: binary × int products cost the int's bits."""
        fwd = self.act_bits if self.weight_bits == 1 else self.weight_bits * self.act_bits
        bwd_w = b_g if self.act_bits == 1 else self.act_bits * b_g
        bwd_d = (b_g if self.weight_bits == 1 else self.weight_bits * b_g) if self.needs_dx else 0
        return self.macs * fwd, self.macs * (bwd_w + bwd_d)


def layer_ops(model: torch.nn.Module, sample_shape) -> list[LayerOps]:
    """Measure each binary layer's per-sample MACs with one forward pass of a single sample."""
    from bitcycle.nets import binary_layers
    from bitcycle.nets.layers import BinaryConv2d

    layers = binary_layers(model)
    names = {id(m): n for n, m in model.named_modules()}
    shapes: dict[int, tuple] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: shapes.__setitem__(id(mod), tuple(o.shape))) for m in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(sample_shape)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    in_bits = _input_bits(model)
    out = []
    for i, m in enumerate(layers):
        out.append(LayerOps(
            name=names[id(m)], kind="conv" if isinstance(m, BinaryConv2d) else "linear",
            macs=m.macs(shapes[id(m)]), weight_bits=int(m.weight_bits),
            act_bits=in_bits if i == 0 else 1, needs_dx=i != 0))
    return out


def _input_bits(model) -> int:
    from brevitas.nn import QuantIdentity

    for m in model.modules():
        if isinstance(m, QuantIdentity):
            bw = m.act_quant.bit_width()
            return int(bw) if bw is not None else FP32_BITS
    return FP32_BITS


def run_costs(layers: list[LayerOps], bits_per_step: list[int], samples_per_step) -> dict:
    """Totals of a training run under both cost models, with the savings vs FP32 and vs fixed 8-bit.

    ``samples_per_step`` is an int (every step the same batch) or a list, one per step.
    """
    if isinstance(samples_per_step, int):
        samples_per_step = [samples_per_step] * len(bits_per_step)
    macs = sum(l.macs for l in layers)
    bops = fp32 = fixed8 = 0
    eng_fwd = eng_bwd = eng_bwd8 = eng_bwd32 = 0
    cache: dict[int, tuple[int, int, int]] = {}
    for b, n in zip(bits_per_step, samples_per_step):
        if b not in cache:
            planes = [l.engine_planes(b) for l in layers]
            cache[b] = (sum(l.bops(b) for l in layers), sum(p[0] for p in planes), sum(p[1] for p in planes))
        step_bops, step_fwd, step_bwd = cache[b]
        bops += n * step_bops
        eng_fwd += n * step_fwd
        eng_bwd += n * step_bwd
    for b in (8, FP32_BITS):
        if b not in cache:
            planes = [l.engine_planes(b) for l in layers]
            cache[b] = (sum(l.bops(b) for l in layers), sum(p[0] for p in planes), sum(p[1] for p in planes))
    samples = sum(samples_per_step)
    fp32 = samples * sum(l.fp32_bops() for l in layers)
    fixed8 = samples * cache[8][0]
    eng_bwd8 = samples * cache[8][2]
    eng_bwd32 = samples * cache[FP32_BITS][2]
    return {
        "macs_per_sample": macs,
        "samples": samples,
        "train_bops": bops,
        "fp32_bops": fp32,
        "fixed8_bops": fixed8,
        "saving_vs_fp32": 1.0 - bops / fp32,
        "saving_vs_fixed8": 1.0 - bops / fixed8,
        "engine_forward_planes": eng_fwd,
        "engine_backward_planes": eng_bwd,
        "engine_backward_planes_fixed8": eng_bwd8,
        "engine_backward_planes_fp32": eng_bwd32,
        "engine_backward_saving_vs_fixed8": 1.0 - eng_bwd / eng_bwd8,
        "engine_total_saving_vs_fixed8": 1.0 - (eng_fwd + eng_bwd) / (eng_fwd + eng_bwd8),
        "mean_grad_bits": sum(bits_per_step) / max(len(bits_per_step), 1),
    }


def layers_table(layers: list[LayerOps]) -> list[dict]:
    return [asdict(l) for l in layers]
