"""Binary layers of the zoo: Brevitas QuantLinear / QuantConv2d with the gradient quantiser.

One place decides how a binary layer computes: ``inner_forward_impl`` (Brevitas calls it with the
already-quantised input and ±1 weights). In training with ``grad_bits < 32`` it wraps

    y = matmul(x, w)          dy → Q_b(dy)   (the error signal the engine multiplies, b bits)
                              dW → Q_b(dW)   (optional, ``quantise_weight_grad``)

with one scale per tensor (``grad_scale="tensor"``) or, by default (``"row"``), inside the matmul's
backward with one scale per output row of each backward product (``bitcycle.quant.grad``).

``matmul`` is the single hook where an alternative autograd Function (e.g. a memory-efficient
one that saves only sign(x)) can be plugged in. During QONNX export Brevitas bypasses this path
(its export handler emits MatMul/Conv + Quant nodes), so the exported graph is the plain W1A1 net.
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant_tensor import QuantTensor

from bitcycle.errors import BitCycleError
from bitcycle.quant.forward import ForwardBitsMixin, uniform_quant_ste
from bitcycle.quant.grad import NO_QUANT_BITS, GradQuantMixin, RowScaledGrad, grad_quant, row_scaled_product
from bitcycle.quant.quantizers import INPUT_BITS_RANGE, BinaryActQuant, BinaryWeightQuant, InputQuant, IntWeightQuant


def _value(x):
    return x.value if isinstance(x, QuantTensor) else x


def _weight_quant(bits: int):
    return BinaryWeightQuant if bits == 1 else IntWeightQuant


class _BinaryMixin(GradQuantMixin, ForwardBitsMixin):
    """Shared forward path of BinaryLinear / BinaryConv2d (see the module docstring)."""

    def _grad_quant_active(self) -> bool:
        return self.training and self.grad_bits < NO_QUANT_BITS and torch.is_grad_enabled()

    def inner_forward_impl(self, x, quant_weight, quant_bias):  # called by Brevitas' forward_impl
        x, w = _value(x), _value(quant_weight)
        if self.training and self.forward_bits > 1 and self.weight_bits == 1:  # CycleBNN variant (quant.forward)
            w = uniform_quant_ste(self.weight, self.forward_bits)
        if not self._grad_quant_active():
            return self.matmul(x, w)
        if self.grad_scale in ("row", "pow2"):
            row_grad = RowScaledGrad(self.grad_bits, self.grad_generator, self.channel_dim, self.quantise_weight_grad,
                                     self.grad_block, pow2=self.grad_scale == "pow2")
            return self.matmul(x, w, row_grad=row_grad)
        if self.quantise_weight_grad:
            w = grad_quant(w, self.grad_bits, self.grad_generator)
        y = self.matmul(x, w)
        return grad_quant(y, self.grad_bits, self.grad_generator)

    channel_dim = 1  # the output-channel dim of y (and so of dy)

    def matmul(self, x: torch.Tensor, w: torch.Tensor, row_grad: RowScaledGrad | None = None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class BinaryLinear(_BinaryMixin, QuantLinear):
    """y = x·Wᵀ with ±1 weights (``weight_bits=1``) or b-bit integer weights, no bias."""

    channel_dim = -1

    def __init__(self, in_features: int, out_features: int, weight_bits: int = 1, quantise_weight_grad: bool = True):
        QuantLinear.__init__(self, in_features, out_features, bias=False,
                             weight_quant=_weight_quant(weight_bits), weight_bit_width=weight_bits)
        self.weight_bits = weight_bits
        self._init_grad_quant(quantise_weight_grad)
        torch.nn.init.uniform_(self.weight.data, -1.0, 1.0)

    def conv_args(self):
        return None

    def matmul(self, x, w, row_grad=None):
        return row_scaled_product(x, w, None, row_grad)

    def macs(self, out_shape) -> int:
        """Multiply-accumulates of one forward pass for an output of ``out_shape`` (batch included)."""
        n = 1
        for d in out_shape[:-1]:
            n *= int(d)
        return n * self.in_features * self.out_features


class BinaryConv2d(_BinaryMixin, QuantConv2d):
    """2-D convolution with ±1 weights, no bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 0, weight_bits: int = 1, quantise_weight_grad: bool = True):
        QuantConv2d.__init__(self, in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                             bias=False, weight_quant=_weight_quant(weight_bits), weight_bit_width=weight_bits)
        self.weight_bits = weight_bits
        self._init_grad_quant(quantise_weight_grad)
        torch.nn.init.uniform_(self.weight.data, -1.0, 1.0)

    def conv_args(self):
        """(stride, padding, dilation, groups) for F.conv2d; zero numeric padding only (as the zoo)."""
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise BitCycleError(f"{type(self).__name__}: padding_mode={self.padding_mode!r}, padding={self.padding!r} is not "
                                f"supported; use zero numeric padding")
        return (self.stride, self.padding, self.dilation, self.groups)

    def matmul(self, x, w, row_grad=None):
        if row_grad is None:
            return self._conv_forward(x, w, None)
        return row_scaled_product(x, w, self.conv_args(), row_grad)

    def macs(self, out_shape) -> int:
        n, c, h, w = (int(d) for d in out_shape)
        kh, kw = self.kernel_size
        return n * c * h * w * (self.in_channels // self.groups) * kh * kw


class BinaryAct(ForwardBitsMixin, QuantIdentity):
    """Bipolar sign activation (±1, Brevitas binary quantiser, STE clipped to [−1, 1]).

    In training with ``forward_bits`` > 1 (CycleBNN's forward cycling) it is b-bit uniform instead."""

    def forward(self, x):
        if self.training and self.forward_bits > 1:
            return uniform_quant_ste(_value(x), self.forward_bits)
        return super().forward(x)


def binary_act() -> QuantIdentity:
    """Bipolar sign activation (±1), STE in backward."""
    return BinaryAct(act_quant=BinaryActQuant)


def input_quant(bits: int = 8) -> QuantIdentity:
    """The input quantiser: ``bits``-bit signed fixed point, the grid k / 2^(bits−1) on [−1, 1 − 2^(1−bits)];
    ``bits`` = 1 is the sign (BNN-PYNQ's binarised input: a pixel at or above half scale is +1), so
    the first layer is a W1A1 layer like the rest."""
    lo, hi = INPUT_BITS_RANGE
    if bits == 1 and not isinstance(bits, bool) and isinstance(bits, int):
        return QuantIdentity(act_quant=BinaryActQuant)
    if isinstance(bits, bool) or not isinstance(bits, int) or not lo <= bits <= hi:
        raise BitCycleError(f"in_bits={bits!r}: the input quantiser takes 1 (sign) or an integer bit width in "
                            f"{lo}..{hi} (signed fixed point on [-1, 1)); use e.g. in_bits=8")
    return QuantIdentity(act_quant=InputQuant, bit_width=bits)


class PerTensorNorm(torch.nn.Module):
    """BatchNorm with one mean/variance/affine pair for the whole tensor (the logits' scale).

    Follows FINN's TensorNorm semantics so streamlining absorbs it into the last layer's scale.
    """

    def __init__(self, eps: float = 1e-4, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.bias = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean()
            var = x.var(unbiased=False)
            with torch.no_grad():
                n = x.numel()
                unbiased = var * n / max(n - 1, 1)
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased.detach())
            return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps) * self.weight + self.bias
