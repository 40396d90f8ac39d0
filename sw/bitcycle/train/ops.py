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

Neither model counts the host's share: each engine job returns exact integers that the host
multiplies by their gradient scale. ``host_scale_muls`` counts those multiplies — one per output
element of a backward product (as a matrix product; a conv lowered im2col style) per scale block
of its reduction axis (``bitcycle.quant.grad``): ceil(out_channels / B) per element of the
[positions, patch] backward-data result, ceil(batch·positions / B) per dW element (one block for
whole-row or per-tensor scales), in every step with quantised gradients.
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
    positions: int = 1      # output positions per sample (H·W of a conv's output, 1 for linear)
    patch: int = 0          # inputs per output: in_features, or in_channels·kh·kw of a conv
    out_channels: int = 0   # output channels / features: dx's reduction axis, blocked by the scales

    def widths(self, b_f: int = 1) -> tuple[int, int]:
        """(b_w, b_a) in a step whose forward W/A precision is b_f (CycleBNN's variant; 1 = binary)."""
        b_w = b_f if self.weight_bits == 1 else self.weight_bits
        b_a = b_f if self.act_bits == 1 else self.act_bits
        return b_w, b_a

    def bops(self, b_g: int, b_f: int = 1) -> int:
        b_w, b_a = self.widths(b_f)
        per = b_w * b_a + b_a * b_g
        if self.needs_dx:
            per += b_w * b_g
        return self.macs * per

    def fp32_bops(self) -> int:
        return self.macs * FP32_BITS * FP32_BITS * (3 if self.needs_dx else 2)

    def scale_muls(self, batch: int, block: int) -> int:
        """Host multiplies that scale this layer's backward products in one quantised step."""
        def blocks(n: int) -> int:
            return -(-n // block) if block else 1
        dx = batch * self.positions * self.patch * blocks(self.out_channels) if self.needs_dx else 0
        return dx + self.out_channels * self.patch * blocks(batch * self.positions)

    def engine_planes(self, b_g: int, b_f: int = 1) -> tuple[int, int]:
        """(forward, backward) bit-planes for one sample: binary × int products cost the int's bits."""
        b_w, b_a = self.widths(b_f)
        fwd = b_a if b_w == 1 else b_w * b_a
        bwd_w = b_g if b_a == 1 else b_a * b_g
        bwd_d = (b_g if b_w == 1 else b_w * b_g) if self.needs_dx else 0
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
            act_bits=in_bits if i == 0 else 1, needs_dx=i != 0,
            positions=_numel(shapes[id(m)][2:]), patch=_numel(m.weight.shape[1:]), out_channels=int(m.weight.shape[0])))
    return out


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _input_bits(model) -> int:
    from brevitas.nn import QuantIdentity

    for m in model.modules():
        if isinstance(m, QuantIdentity):
            bw = m.act_quant.bit_width()
            return int(bw) if bw is not None else FP32_BITS
    return FP32_BITS


def run_costs(layers: list[LayerOps], bits_per_step: list[int], samples_per_step,
              forward_bits_per_step: list[int] | None = None, scale_block: int = 0) -> dict:
    """Totals of a training run under both cost models, with the savings vs FP32 and vs fixed 8-bit.

    ``samples_per_step`` is an int (every step the same batch) or a list, one per step.
    ``forward_bits_per_step`` (CycleBNN's forward cycling) defaults to 1 (binary) at every step;
    the fixed-8 reference keeps the same forward widths and only sets b_g = 8. ``scale_block`` is
    the gradient scales' block (0: one scale per row or tensor) for ``host_scale_muls``.
    """
    if isinstance(samples_per_step, int):
        samples_per_step = [samples_per_step] * len(bits_per_step)
    if forward_bits_per_step is None:
        forward_bits_per_step = [1] * len(bits_per_step)
    macs = sum(l.macs for l in layers)
    bops = fixed8 = 0
    eng_fwd = eng_bwd = eng_bwd8 = eng_bwd32 = 0
    cache: dict[tuple[int, int], tuple[int, int, int]] = {}

    def step_cost(b: int, bf: int) -> tuple[int, int, int]:
        if (b, bf) not in cache:
            planes = [l.engine_planes(b, bf) for l in layers]
            cache[b, bf] = (sum(l.bops(b, bf) for l in layers), sum(p[0] for p in planes), sum(p[1] for p in planes))
        return cache[b, bf]

    host_muls = 0
    for b, bf, n in zip(bits_per_step, forward_bits_per_step, samples_per_step):
        if b < FP32_BITS:
            host_muls += sum(l.scale_muls(n, scale_block) for l in layers)
        step_bops, step_fwd, step_bwd = step_cost(b, bf)
        bops += n * step_bops
        eng_fwd += n * step_fwd
        eng_bwd += n * step_bwd
        fixed8 += n * step_cost(8, bf)[0]
        eng_bwd8 += n * step_cost(8, bf)[2]
        eng_bwd32 += n * step_cost(FP32_BITS, bf)[2]
    samples = sum(samples_per_step)
    fp32 = samples * sum(l.fp32_bops() for l in layers)
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
        "host_scale_muls": host_muls,
        "host_scale_muls_per_backward_mac": host_muls / max(sum(
            n * sum(l.macs * (2 if l.needs_dx else 1) for l in layers)
            for b, n in zip(bits_per_step, samples_per_step) if b < FP32_BITS), 1),
        "mean_grad_bits": sum(bits_per_step) / max(len(bits_per_step), 1),
        "mean_forward_bits": sum(forward_bits_per_step) / max(len(forward_bits_per_step), 1),
    }


def layers_table(layers: list[LayerOps]) -> list[dict]:
    return [asdict(l) for l in layers]
