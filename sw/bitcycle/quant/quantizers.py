"""Brevitas quantizers of BitCycle, composed the Brevitas way (injectors + solvers).

Constant scale 1.0 everywhere, so the exported QONNX graph holds plain bipolar / integer values
that FINN's streamlining turns into XNOR-popcount and thresholds:

* ``BinaryWeightQuant``  ±1 weights (sign with straight-through estimator), per-tensor scale 1.
* ``BinaryActQuant``     ±1 activations (bipolar sign, STE clipped to [−1, 1]).
* ``InputQuant8``        the first layer's input: 8-bit signed fixed point Q1.7 in [−1, 1 − 2⁻⁷].
* ``IntWeightQuant``     b-bit integer weights (the option of an 8-bit last layer), narrow range.

``bit_width`` picks binary (1) or integer (≥ 2) quantisation through ``quant_type``.
"""

from __future__ import annotations

from brevitas.core.bit_width import BitWidthImplType
from brevitas.core.quant import QuantType
from brevitas.core.restrict_val import FloatToIntImplType, RestrictValueType
from brevitas.core.scaling import ScalingImplType
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.inject import ExtendedInjector, value
from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver


class _ConstScaleQuant(ExtendedInjector):
    bit_width_impl_type = BitWidthImplType.CONST
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    zero_point_impl = ZeroZeroPoint
    float_to_int_impl_type = FloatToIntImplType.ROUND
    scaling_per_output_channel = False
    narrow_range = True
    signed = True

    @value
    def quant_type(bit_width):
        if bit_width is None:
            return QuantType.FP
        return QuantType.BINARY if bit_width == 1 else QuantType.INT


class BinaryWeightQuant(_ConstScaleQuant, WeightQuantSolver):
    bit_width = 1
    scaling_const = 1.0


class IntWeightQuant(_ConstScaleQuant, WeightQuantSolver):
    """Integer weights in [−1, 1] (scale 1/(2^(b−1)−1) after Brevitas' narrow-range solver)."""

    bit_width = 8
    scaling_const = 1.0


class BinaryActQuant(_ConstScaleQuant, ActQuantSolver):
    bit_width = 1
    min_val = -1.0
    max_val = 1.0


class InputQuant8(_ConstScaleQuant, ActQuantSolver):
    bit_width = 8
    min_val = -1.0
    max_val = 1.0 - 2.0 ** -7
    narrow_range = False
    restrict_scaling_type = RestrictValueType.POWER_OF_TWO
