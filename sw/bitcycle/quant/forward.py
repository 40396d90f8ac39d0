"""CycleBNN's original variant, for comparison: cycle the *forward* W/A precision, then binarise.

For the first ``fraction`` of the training steps the binary layers' weights and the sign
activations are replaced by b_f-bit symmetric uniform quantisation of [−1, 1] (levels k/L,
L = 2^(b_f−1) − 1, straight-through gradient, activations clamped to [−1, 1] as the binary
quantiser does), with b_f following its own schedule (e.g. ``cosine:2-8x4``); after that the net
trains — and always evaluates and exports — as the plain W1A1 net. b_f = 1 is the binary net.
"""

from __future__ import annotations

import torch

from bitcycle.errors import BitCycleError


def uniform_quant_ste(x: torch.Tensor, bits: int) -> torch.Tensor:
    """clamp(x, −1, 1) rounded to b-bit symmetric levels; gradient passes straight through the rounding."""
    levels = (1 << (int(bits) - 1)) - 1
    x = x.clamp(-1.0, 1.0)
    q = torch.round(x * levels) / levels
    return x + (q - x).detach()


class ForwardBitsMixin:
    """``forward_bits`` > 1 switches a binary module to b-bit uniform quantisation in training."""

    forward_bits: int = 1


def set_forward_bits(model: torch.nn.Module, bits: int) -> int:
    """Set the forward W/A bit-width of every binary layer and sign activation; returns how many modules."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise BitCycleError(f"forward bits={bits!r} must be an integer in 1..16 (1 = binary)")
    mods = [m for m in model.modules() if isinstance(m, ForwardBitsMixin)]
    for m in mods:
        m.forward_bits = bits
    return len(mods)
