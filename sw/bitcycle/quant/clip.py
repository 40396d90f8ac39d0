"""The clipping block (Vorabbi, Maltoni, Santi): a binary layer's integer output clipped to signed
8 bits with a trainable power-of-two scale, so the data between layers is 8-bit, not 32-bit.

Composed the Brevitas way from ``Int8ActPerTensorFixedPoint`` (8-bit signed, power-of-two scale)
with the scale made a trained *parameter* (not runtime statistics), initialised so that the block
starts as the identity on [−128, 127]:

    q = clamp(floor(acc / 2^s), −128, 127),   out = q · 2^s,   s = round(log2 scale) (learned)

floor, not round: for s ≥ 0 that is exactly the engine's CLIP8 output stage, an arithmetic right
shift then saturation (``bitcycle.golden.stream.clip8``), so the trained net and the RTL agree bit
for bit.

Backward is straight-through: ∂out/∂acc = 1 inside the clip range and 0 outside; the scale
parameter gets the PACT-style gradient from the clipped values, so the clip range is trained in.
In hardware the block is an arithmetic shift by s and saturation to 8 bits
(``bitcycle.golden.thresholds.clip_shift8`` is its golden model, also for s < 0); the exported QONNX graph holds a
``Quant`` node with bit width 8, which FINN turns into an 8-bit MultiThreshold.
"""

from __future__ import annotations

import math

from brevitas.core.scaling import ScalingImplType
from brevitas.inject.enum import FloatToIntImplType
from brevitas.nn import QuantIdentity
from brevitas.quant import Int8ActPerTensorFixedPoint

from bitcycle.errors import BitCycleError

CLIP_BITS = 8
CLIP_RANGE = (-(1 << (CLIP_BITS - 1)), (1 << (CLIP_BITS - 1)) - 1)


class Clip8Quant(Int8ActPerTensorFixedPoint):
    """8-bit signed, power-of-two scale, the scale a trained parameter (initialised from max_val)."""

    scaling_impl_type = ScalingImplType.PARAMETER
    float_to_int_impl_type = FloatToIntImplType.FLOOR  # = the engine's arithmetic right shift
    max_val = 128.0  # scale 1: identity on the 8-bit range at the start
    min_val = -128.0


class ClipBlock(QuantIdentity):
    """Trainable clip of an integer accumulator to signed 8 bits (see the module docstring).

    ``max_val``: initial clip magnitude; the initial scale is the power of two nearest max_val/128.
    """

    def __init__(self, max_val: float = 128.0, return_quant_tensor: bool = False):
        if not (max_val > 0 and math.isfinite(max_val)):
            raise BitCycleError(f"ClipBlock max_val={max_val!r}: give a positive clip magnitude, e.g. 128")
        super().__init__(act_quant=Clip8Quant, max_val=float(max_val), min_val=-float(max_val),
                         return_quant_tensor=return_quant_tensor)

    def scale(self) -> float:
        return float(self.act_quant.scale().detach())

    def shift(self) -> int:
        """The right shift s of the hardware block (scale = 2^s; negative means a left shift)."""
        s = math.log2(self.scale())
        if s != round(s):
            raise BitCycleError(f"clip scale {self.scale()} is not a power of two")
        return int(round(s))

    @staticmethod
    def int_range() -> tuple[int, int]:
        """Range of the 8-bit codes it emits: the next layer's integer operand range."""
        return CLIP_RANGE
