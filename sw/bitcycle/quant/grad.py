"""The gradient quantiser: b signed bits, per-tensor dynamic scale, seeded stochastic rounding.

The hardware engine multiplies a binary operand by a b-bit two's-complement integer, so the error
signal dy that enters a binary layer's backward pass must be such an integer times one scale:

    s = max|g| / (2^(b−1) − 1)            (symmetric, "narrow" range: q ∈ [−(2^(b−1)−1), 2^(b−1)−1])
    q = clamp(floor(g/s + u), ±(2^(b−1)−1)),   u ~ U[0, 1) from a seeded torch.Generator

so E[q·s] = g (stochastic rounding is unbiased). For b = 1 the engine's operand is bipolar ±1:
q = +1 with probability (1 + g/s)/2, else −1, with s = max|g| — again unbiased. b ≥ 32 means no
quantisation (the FP32 baseline). An all-zero tensor quantises to zeros with scale 1.
"""

from __future__ import annotations

import torch

from bitcycle.errors import BitCycleError

NO_QUANT_BITS = 32


def _quantise(g: torch.Tensor, bits: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale) with q an integer-valued float32 tensor (one fused in-place pass: this runs on
    every binary layer's dy and dW at every step, so it is kept cheap)."""
    if not 1 <= int(bits) < NO_QUANT_BITS:
        raise BitCycleError(f"gradient bits={bits} must be in 1..31 to quantise (32 = no quantisation)")
    bits = int(bits)
    g = g.detach()
    amax = g.abs().max().float()
    if not torch.isfinite(amax):
        raise BitCycleError("gradient holds inf/NaN; lower the learning rate")
    u = torch.rand(g.shape, generator=generator, dtype=torch.float32, device=g.device)
    if amax == 0:
        return torch.zeros(g.shape, dtype=torch.float32, device=g.device), torch.ones((), dtype=torch.float32, device=g.device)
    if bits == 1:
        # +1 with probability (1 + g/s)/2: u < (1 + g/s)/2  ⇔  2u − 1 < g/s
        q = torch.where(u.mul_(2.0).sub_(1.0) < g.float() / amax, 1.0, -1.0)
        return q, amax
    qmax = float((1 << (bits - 1)) - 1)
    scale = amax / qmax
    q = g.float() / scale
    return q.add_(u).floor_().clamp_(-qmax, qmax), scale


def quantise_grad(g: torch.Tensor, bits: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (q, scale) with q an int32 tensor of b-bit signed integers and g ≈ q·scale (unbiased)."""
    q, scale = _quantise(g, bits, generator)
    return q.to(torch.int32), scale


def fake_quantise_grad(g: torch.Tensor, bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """g quantised to b bits and scaled back (same dtype as g); bits ≥ 32 returns g unchanged."""
    if bits >= NO_QUANT_BITS:
        return g
    q, scale = _quantise(g, bits, generator)
    return q.mul_(scale).to(g.dtype)


class GradQuantFn(torch.autograd.Function):
    """Identity on the forward pass; quantises the incoming gradient on the backward pass."""

    @staticmethod
    def forward(ctx, x, bits, generator):  # noqa: D401 - autograd signature
        ctx.bits = int(bits)
        ctx.generator = generator
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_out):
        return fake_quantise_grad(grad_out, ctx.bits, ctx.generator), None, None


def grad_quant(x: torch.Tensor, bits: int, generator: torch.Generator | None) -> torch.Tensor:
    """Insert the gradient quantiser on x's backward path (no-op for bits ≥ 32)."""
    if bits >= NO_QUANT_BITS or not x.requires_grad:
        return x
    return GradQuantFn.apply(x, bits, generator)


class GradQuantMixin:
    """State a binary layer needs for gradient quantisation: the bit-width and its own generator.

    ``grad_bits`` is set for every step by the trainer via :func:`set_grad_bits`; the generator is
    seeded via :func:`seed_grad_quant` and its state travels in checkpoints
    (:func:`grad_quant_state` / :func:`load_grad_quant_state`) so a resumed run is identical.
    """

    grad_bits: int = NO_QUANT_BITS
    quantise_weight_grad: bool = True

    def _init_grad_quant(self, quantise_weight_grad: bool = True) -> None:
        self.grad_bits = NO_QUANT_BITS
        self.quantise_weight_grad = quantise_weight_grad
        self.grad_generator = torch.Generator()
        self.grad_generator.manual_seed(0)


def grad_quant_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, GradQuantMixin)]


def set_grad_bits(model: torch.nn.Module, bits: int) -> int:
    """Set the gradient bit-width of every binary layer of ``model``; returns how many layers."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= NO_QUANT_BITS:
        raise BitCycleError(f"gradient bits={bits!r} must be an integer in 1..32 (32 = no quantisation)")
    layers = grad_quant_layers(model)
    for layer in layers:
        layer.grad_bits = bits
    return len(layers)


def seed_grad_quant(model: torch.nn.Module, seed: int) -> None:
    """Seed each binary layer's stochastic-rounding generator (layer i gets seed·1000003 + i)."""
    for i, layer in enumerate(grad_quant_layers(model)):
        layer.grad_generator.manual_seed((int(seed) * 1000003 + i) % (2**63))


def grad_quant_state(model: torch.nn.Module) -> list[torch.Tensor]:
    return [layer.grad_generator.get_state() for layer in grad_quant_layers(model)]


def load_grad_quant_state(model: torch.nn.Module, states: list[torch.Tensor]) -> None:
    layers = grad_quant_layers(model)
    if len(states) != len(layers):
        raise BitCycleError(f"checkpoint holds {len(states)} gradient-quantiser states but the model has "
                            f"{len(layers)} binary layers; resume with the same --model")
    for layer, state in zip(layers, states):
        layer.grad_generator.set_state(state)
