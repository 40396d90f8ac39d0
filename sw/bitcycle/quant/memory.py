"""Memory-efficient binary layers: save 1 bit per activation for backward, not 32.

Standard autograd through a binary layer ``y = sign(W) · sign(x)`` followed by BatchNorm keeps,
per training step, the float pre-sign input ``x`` (for the straight-through clamp), the float
``sign(x)`` (for dW), a float copy of ``sign(W)``, and the float layer output (for BatchNorm's
backward). Following Wang et al. ("Enabling binary neural network training on the edge") the
functions here keep only what the backward really needs, in the smallest exact form:

* ``sign(x)``, 8 values per byte (``pack_bits``), for ``dW = dyᵀ · sign(x)``;
* the straight-through mask ``|x| ≤ 1``, 8 per byte, for ``dx = (dy · sign(W)) ⊙ mask``;
* nothing of the weights: ``sign(W)`` is recomputed from the latent weight parameter;
* for BatchNorm, the layer output as the integer it is (int8 when it fits, else int16) plus the
  per-channel mean and 1/σ, from which x̂ is recomputed exactly.

All of it goes through ``ctx.save_for_backward`` so ``torch.autograd.graph.saved_tensors_hooks``
sees (and ``bitcycle.train.memory`` measures) every byte. The gradients equal autograd's on the same
binarised inputs: exactly for the matmul products (integer-valued operands), to float rounding for
BatchNorm (same formula, different summation order).

Semantics match Brevitas' binary quantisers as used by FINN's BNN-PYNQ models: activations are
clamped to [−1, 1] and then take sign (0 ↦ +1), so their gradient is masked to |x| ≤ 1
(``ClampedBinaryQuant``); weights take sign with an identity straight-through gradient
(``BinaryQuant``, scale 1). The cyclic-precision gradient quantiser composes through the matmul
hook's ``row_grad`` (``bitcycle.quant.grad.RowScaledGrad``), which quantises dy per product row.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from bitcycle.errors import BitCycleError
from bitcycle.quant.grad import input_grad, product, weight_grad


_SHIFTS = torch.arange(8, dtype=torch.uint8)


# ----------------------------------------------------------------------------- bit packing
def pack_bits(bits: Tensor) -> Tensor:
    """Pack a boolean tensor into uint8, 8 per byte, LSB first; returns a 1-D uint8 tensor.

    The shape is not stored: pass it to ``unpack_bits``.
    """
    flat = bits.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, 8) << _SHIFTS.to(flat.device)).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, shape) -> Tensor:
    """Inverse of ``pack_bits``: a bool tensor of ``shape``."""
    shape = torch.Size(shape)
    n = shape.numel()
    if packed.dtype != torch.uint8 or packed.numel() * 8 < n or packed.numel() * 8 - n >= 8:
        raise ValueError(f"packed holds {packed.numel()} bytes ({packed.dtype}), which cannot unpack to shape {list(shape)}")
    bits = (packed.reshape(-1, 1) >> _SHIFTS.to(packed.device)) & 1
    return bits.reshape(-1)[:n].view(shape).bool()


def pack_signs(x: Tensor) -> Tensor:
    """sign(x) as bits (x ≥ 0 ↦ 1 ↦ +1, x < 0 ↦ 0 ↦ −1), 8 per byte."""
    return pack_bits(x >= 0)


def unpack_signs(packed: Tensor, shape, dtype=torch.float32) -> Tensor:
    """±1 tensor of ``shape`` and ``dtype`` from ``pack_signs``."""
    return unpack_bits(packed, shape).to(dtype) * 2 - 1


def binary_sign(x: Tensor) -> Tensor:
    """sign with 0 ↦ +1 (Brevitas' binary_sign), no gradient logic."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)  # scalar branches: no full-size temporaries


# ----------------------------------------------------------------------------- batch norm on integers
def integer_codes(y: Tensor, steps=(1.0,)) -> Optional[tuple]:
    """(int8/int16 codes, step) if ``y`` = codes · step exactly for the first fitting step, else None.

    What a binary layer's output is: an integer (step 1), or one on the 8-bit input grid."""
    with torch.no_grad():
        for step in steps:
            if step is None or not y.numel():
                continue
            q = y if step == 1.0 else y / step
            r = torch.round(q)
            if not torch.equal(r, q):
                continue
            lo, hi = r.min().item(), r.max().item()
            for dtype in (torch.int8, torch.int16):
                info = torch.iinfo(dtype)
                if info.min <= lo and hi <= info.max:
                    return r.to(dtype), step
    return None


class IntBatchNormFn(torch.autograd.Function):
    """Training-mode BatchNorm whose input is an integer times ``step`` (a binary layer's output).

    Saves the input as int8/int16 ``codes`` (from ``integer_codes``) plus per-channel mean and 1/σ;
    the input is recomputed exactly in backward.
    """

    @staticmethod
    def forward(ctx, y, gamma, beta, running_mean, running_var, momentum, eps, codes, step):
        # torch's own kernels, forward and backward, so the result is bit-identical to nn.BatchNorm
        # (a rounding difference next to 0 would flip the following sign and change the net).
        out, mean, invstd = torch.ops.aten.native_batch_norm(y, gamma, beta, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(codes, mean, invstd, gamma)
        ctx.meta = (y.dtype, step, eps)
        return out

    @staticmethod
    def backward(ctx, dout):
        codes, mean, invstd, gamma = ctx.saved_tensors
        dtype, step, eps = ctx.meta
        y = codes.to(dtype) * step  # exact: the codes were checked in forward
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        dy, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
            dout.contiguous(), y, gamma, None, None, mean, invstd, True, eps, mask)
        return dy, dgamma, dbeta, None, None, None, None, None, None


def int_batch_norm(y: Tensor, bn: torch.nn.modules.batchnorm._BatchNorm, name: str = "BatchNorm",
                   step: float = 1.0, codes: Optional[Tensor] = None) -> Tensor:
    """``bn(y)`` with the reduced saved state; eval mode (or no affine) falls back to ``bn`` itself.

    ``codes``: ``integer_codes(y, (step,))[0]`` if the caller already has them."""
    if not bn.training or not bn.affine or not bn.track_running_stats or bn.momentum is None:
        return bn(y)
    if codes is None:
        found = integer_codes(y, (step,))
        if found is None:
            raise BitCycleError(f"{name}: BatchNorm input is not a multiple of {step} within int16 (is the layer "
                                f"before it binary?); use standard mode for this layer")
        codes = found[0]
    bn.num_batches_tracked.add_(1)
    return IntBatchNormFn.apply(y, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.momentum, bn.eps, codes, step)


# ----------------------------------------------------------------------------- hooks for Brevitas layers
# The zoo's layers (bitcycle.nets.layers) quantise weights and activations with Brevitas and call
# one ``matmul(x, w)`` hook with the already-quantised operands; the functions below are what a
# memory-efficient run plugs into that hook and into the sign activations, max-pools and BatchNorms
# around it (``bitcycle.train.memory.set_memory_efficient`` does the plugging).
def _is_bipolar(x: Tensor) -> bool:
    return bool(((x == 1) | (x == -1)).all())


def _reduce_operand(x: Tensor, input_scale: Optional[float], where: str):
    """A quantised layer input in its smallest exact form: packed bits if ±1, else int8 codes."""
    if _is_bipolar(x):
        return pack_signs(x), True
    if input_scale is not None:
        codes = torch.round(x / input_scale)
        if codes.numel() and codes.min() >= -128 and codes.max() <= 127 and torch.equal(codes * input_scale, x):
            return codes.to(torch.int8), False
    raise BitCycleError(f"{where}: memory-efficient mode needs this layer's input to be ±1 (after a sign activation) "
                        f"or on the 8-bit input grid; this one is neither, so train it in standard mode")


class PackedOperandMatmulFn(torch.autograd.Function):
    """``product(x, w)`` (linear or conv2d) on already-quantised operands, saving x packed (±1: 1 bit)
    or as int8 codes (the 8-bit first-layer input). ``w`` is the quantised weight tensor Brevitas
    produced; it is parameter-sized (not batch-sized) and saved as it is. With ``row_grad``
    (``bitcycle.quant.grad.RowScaledGrad``) the backward quantises dy per row of each product."""

    @staticmethod
    def forward(ctx, x, w, conv_args, input_scale, where, row_grad):
        y = product(x, w, conv_args)
        # Save only what the needed gradients use (as autograd does): w for dx, x for dW.
        empty = x.new_empty(0, dtype=torch.uint8)
        reduced, bipolar = _reduce_operand(x, input_scale, where) if ctx.needs_input_grad[1] else (empty, True)
        w_bipolar = _is_bipolar(w)  # binary weights: 1 bit each; b-bit ones (8-bit last layer) as they are
        w_saved = (pack_signs(w) if w_bipolar else w) if ctx.needs_input_grad[0] else empty
        ctx.save_for_backward(w_saved, reduced)
        ctx.meta = (x.shape, x.dtype, w.shape, w_bipolar, conv_args, input_scale, bipolar, row_grad)
        return y

    @staticmethod
    def backward(ctx, dy):
        w, reduced = ctx.saved_tensors
        shape, dtype, w_shape, w_bipolar, conv_args, input_scale, bipolar, row_grad = ctx.meta

        def load_w():
            return unpack_signs(w, w_shape, dtype) if w_bipolar else w

        def load_x():
            return unpack_signs(reduced, shape, dtype) if bipolar else reduced.to(dtype) * input_scale

        needs = ctx.needs_input_grad[:2]
        if row_grad is not None:
            dx, dw = row_grad.backward(dy, shape, w_shape, load_w, load_x, conv_args, needs)
        else:
            dx = input_grad(dy, load_w(), shape, conv_args) if needs[0] else None
            dw = weight_grad(dy, load_x(), w_shape, conv_args) if needs[1] else None
        return dx, dw, None, None, None, None


def packed_operand_product(x, w, conv_args=None, *, input_scale=None, where="binary layer", row_grad=None):
    """``product(x, w, conv_args)`` saving the reduced operands; conv_args None means linear."""
    return PackedOperandMatmulFn.apply(x, w, conv_args, input_scale, where, row_grad)


def packed_operand_linear(x, w, *, input_scale=None, where="BinaryLinear"):
    return packed_operand_product(x, w, None, input_scale=input_scale, where=where)


class PackedSignActFn(torch.autograd.Function):
    """sign(clamp(x, −1, 1)) (Brevitas' ClampedBinaryQuant, scale 1), saving the clamp mask packed."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(pack_bits(x.abs() <= 1))
        ctx.shape = x.shape
        return binary_sign(x)

    @staticmethod
    def backward(ctx, g):
        (packed,) = ctx.saved_tensors
        return g * unpack_bits(packed, ctx.shape)


def packed_sign_act(x: Tensor) -> Tensor:
    return PackedSignActFn.apply(x)


class PackedMaxPool2dFn(torch.autograd.Function):
    """Max-pool of a ±1 tensor saving the input packed (1 bit) instead of int64 argmax indices;
    backward recomputes the indices with the same kernel, so it routes gradients exactly as torch."""

    @staticmethod
    def forward(ctx, x, args):
        ctx.save_for_backward(pack_signs(x))
        ctx.meta = (x.shape, x.dtype, args)
        return F.max_pool2d(x, *args)

    @staticmethod
    def backward(ctx, g):
        (packed,) = ctx.saved_tensors
        shape, dtype, (kernel, stride, padding, dilation, ceil_mode) = ctx.meta
        x = unpack_signs(packed, shape, dtype)
        _, idx = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
        dx = torch.ops.aten.max_pool2d_with_indices_backward(g, x, kernel, stride, padding, dilation, ceil_mode, idx)
        return dx, None


def packed_max_pool2d(x: Tensor, kernel, stride, padding, dilation, ceil_mode) -> Tensor:
    pair = torch.nn.modules.utils._pair
    stride = kernel if stride is None else stride
    args = (pair(kernel), pair(stride), pair(padding), pair(dilation), bool(ceil_mode))
    return PackedMaxPool2dFn.apply(x, args)


class ShapeOnlyAvgPool2dFn(torch.autograd.Function):
    """Average pooling saving nothing: its backward needs only the input's shape (torch's own
    avg_pool2d saves the whole float input, e.g. the residual stream of a ResNet shortcut)."""

    @staticmethod
    def forward(ctx, x, args):
        ctx.meta = (x.shape, x.dtype, args)
        return F.avg_pool2d(x, *args)

    @staticmethod
    def backward(ctx, g):
        shape, dtype, (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override) = ctx.meta
        # the kernel reads only the sizes of `self`: a zero-stride view costs no memory
        shape_only = torch.zeros((), dtype=dtype, device=g.device).expand(shape)
        dx = torch.ops.aten.avg_pool2d_backward(g, shape_only, kernel, stride, padding, ceil_mode,
                                                count_include_pad, divisor_override)
        return dx, None


def shape_only_avg_pool2d(x: Tensor, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                          divisor_override=None) -> Tensor:
    pair = torch.nn.modules.utils._pair
    stride = kernel if stride is None else stride
    args = (pair(kernel), pair(stride), pair(padding), bool(ceil_mode), bool(count_include_pad), divisor_override)
    return ShapeOnlyAvgPool2dFn.apply(x, args)
