"""Brevitas quantizers of BitCycle: Brevitas' own quantizers with a constant scale of 1.

Constant scale 1.0 everywhere, so the exported QONNX graph holds plain bipolar / integer values
that FINN's streamlining turns into XNOR-popcount and thresholds. Each is one of Brevitas' shipped
quantizers with only the attributes that differ overridden (the way ``bitcycle.quant.clip`` builds
its clip block), so what each one means is in its class line, not in a bit-width switch:

* ``BinaryWeightQuant``  ±1 weights: ``SignedBinaryWeightPerTensorConst`` with scale 1.
* ``BinaryActQuant``     ±1 activations: ``SignedBinaryActPerTensorConst`` (sign, STE clipped to [−1, 1]).
* ``IntWeightQuant``     b-bit narrow-range integer weights in [−1, 1] (the option of an 8-bit last layer):
                         Brevitas' ``NarrowIntQuant`` with a constant per-tensor scale.
* ``InputQuant``         the first layer's input: b-bit signed fixed point Q1.(b−1), the grid
                         k / 2^(b−1) on [−1, 1 − 2^(1−b)]: Brevitas' signed ``IntQuant`` with a
                         per-tensor power-of-two scale held constant (``Int8ActPerTensorFixedPoint``
                         learns it from statistics).
"""

from __future__ import annotations

from brevitas.core.function_wrapper import TensorClampSte
from brevitas.core.restrict_val import RestrictValueType
from brevitas.core.scaling import ScalingImplType, ScalingPerOutputType
from brevitas.inject import ExtendedInjector, value
from brevitas.quant.base import IntQuant, NarrowIntQuant, PerTensorPoTScaling8bit
from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver

# The widest input the engine's MAC takes (driver.json's engine.max_bits is at most 16); one bit is
# the sign, so 2 is the narrowest input with a fractional grid.
INPUT_BITS_RANGE = (2, 16)


class BinaryWeightQuant(SignedBinaryWeightPerTensorConst):
    """±1 weights, per-tensor scale 1.

    Brevitas' default clamp here (``InplaceTensorClampSte``) would also clip the latent weights in
    place on every forward pass, evaluation and export included; training clips them once per
    optimiser step (``nets.clip_latent_weights``), so the clamp is the out-of-place STE one: the
    same sign, the same straight-through gradient, and a forward pass that leaves the weights alone.
    """

    scaling_const = 1.0
    tensor_clamp_impl = TensorClampSte


class BinaryActQuant(SignedBinaryActPerTensorConst):
    """±1 activations (bipolar sign, scale 1 from min_val/max_val = ∓1, zero gradient outside [−1, 1])."""


class _UnitScalePerTensor(ExtendedInjector):
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    scaling_per_output_type = ScalingPerOutputType.TENSOR
    scaling_const = 1.0


class IntWeightQuant(NarrowIntQuant, _UnitScalePerTensor, WeightQuantSolver):
    """b-bit integer weights in [−1, 1]: scale 1/(2^(b−1)−1) after Brevitas' narrow-range int scaling."""

    bit_width = 8


class InputQuant(IntQuant, PerTensorPoTScaling8bit, ActQuantSolver):
    """b-bit signed fixed point Q1.(b−1) (``bit_width`` = b, 8 by default): k / 2^(b−1), k in [−2^(b−1), 2^(b−1)).

    Brevitas' ``Int8ActPerTensorFixedPoint`` without its statistics: the power-of-two scale is the
    constant 2^0 = 1 from max(|min_val|, |max_val|), never learned."""

    scaling_impl_type = ScalingImplType.CONST
    min_val = -1.0

    @value
    def max_val(bit_width):
        return 1.0 - 2.0 ** (1 - bit_width)
