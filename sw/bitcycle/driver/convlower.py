"""Conv and max-pool layers on the host around the engine's matrix products (numpy, no torch).

A conv layer is lowered by im2col: the input maps x [B, C, H, W] become the operand
cols [C·k·k, B·H'·W'] (row c·k·k + i·k + j — torch's ``weight.reshape(out, -1)`` order; column
b·H'·W' + h·W' + w), so forward is the engine's sign(W)[M, C·k·k] · cols, backward-data its
sign(W)ᵀ · q(dy) followed by col2im (overlapping windows summed), backward-weight
q(dy) · sign(cols)ᵀ. Between layers activations travel as [B, features] in torch's flattened C,H,W
order, so a dense layer after a conv sees what ``x.reshape(B, -1)`` gives in the torch zoo.

Max-pool (after the activation, on ±1 maps as bitcycle.nets.cnv) routes the gradient of each
window to one argmax: the first maximum in row-major order within the window, as torch's CPU
max_pool2d (it updates its index only on a strictly larger value), so ties — everywhere on ±1
maps — go to the window's top-left-most maximum.
"""

from __future__ import annotations

import numpy as np

from bitcycle.hwif import convshapes


def _padded(x: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x


def _windows(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """View [B, C, H', W', k, k] of x [B, C, H, W]'s k×k windows at the given stride."""
    win = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(2, 3))
    return win[:, :, ::stride, ::stride]


def im2col(x: np.ndarray, kernel: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """x [B, C, H, W] → cols [C·k·k, B·H'·W'] (zero padding)."""
    b, c = x.shape[:2]
    win = _windows(_padded(x, padding), kernel, stride)  # [B, C, H', W', k, k]
    ho, wo = win.shape[2:4]
    return np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kernel * kernel, b * ho * wo))


def col2im(cols: np.ndarray, shape: tuple[int, int, int, int], kernel: int, stride: int = 1,
           padding: int = 0) -> np.ndarray:
    """The adjoint of :func:`im2col`: cols [C·k·k, B·H'·W'] → [B, C, H, W], overlapping windows summed."""
    b, c, h, w = shape
    hp, wp = h + 2 * padding, w + 2 * padding
    ho, wo = (hp - kernel) // stride + 1, (wp - kernel) // stride + 1
    blocks = cols.reshape(c, kernel, kernel, b, ho, wo)
    out = np.zeros((b, c, hp, wp), dtype=np.result_type(cols.dtype, np.int64))
    for i in range(kernel):
        for j in range(kernel):
            out[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += blocks[:, i, j].transpose(1, 0, 2, 3)
    return out[:, :, padding:padding + h, padding:padding + w]


def maxpool_forward(x: np.ndarray, kernel: int, stride: int) -> tuple[np.ndarray, tuple]:
    """x [B, C, H, W] → (max over each window [B, C, H'', W''], cache with each window's argmax)."""
    win = _windows(x, kernel, stride)
    flat = win.reshape(*win.shape[:4], kernel * kernel)
    arg = np.argmax(flat, axis=-1)  # the first maximum in row-major order (torch's tie rule)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return y, (x.shape, arg, kernel, stride)


def maxpool_backward(dy: np.ndarray, cache: tuple) -> np.ndarray:
    """dy [B, C, H'', W''] → dx [B, C, H, W]: each window's gradient to its argmax (summed where
    overlapping windows pick the same element)."""
    shape, arg, kernel, stride = cache
    b, c, ho, wo = arg.shape
    rows = np.arange(ho)[:, None] * stride + arg // kernel  # [B, C, H'', W''] via broadcasting
    cols = np.arange(wo)[None, :] * stride + arg % kernel
    dx = np.zeros(shape, dtype=np.float64)
    bi, ci = np.meshgrid(np.arange(b), np.arange(c), indexing="ij")
    np.add.at(dx, (bi[:, :, None, None], ci[:, :, None, None], rows, cols), dy)
    return dx


def operand_bits(layer) -> int:
    """Bits of the layer's engine operand: in_bits, but 2 for a padded conv on binary input (the
    zero padding is not a ±1 code)."""
    if layer.conv is not None and layer.in_bits == 1 and convshapes.conv_params(layer)["padding"]:
        return 2
    return layer.in_bits


def lower_input(layer, h: np.ndarray) -> np.ndarray:
    """Activations h [B, features] → the layer's engine operand [in_features, N]."""
    if layer.conv is None:
        return np.ascontiguousarray(h.T)
    c = convshapes.conv_params(layer)
    x = h.reshape(h.shape[0], c["in_channels"], c["in_h"], c["in_w"])
    return im2col(x, c["kernel"], c["stride"], c["padding"])


def raise_output(layer, a: np.ndarray, batch: int) -> tuple[np.ndarray, tuple | None]:
    """The activated product a [out, N] → (h [B, features] for the next layer, pool cache)."""
    if layer.conv is None:
        return np.ascontiguousarray(a.T), None
    ho, wo = convshapes.conv_hw(layer)
    maps = a.reshape(layer.out_features, batch, ho, wo).transpose(1, 0, 2, 3)
    pool, cache = convshapes.pool_params(layer), None
    if pool is not None:
        maps, cache = maxpool_forward(maps, pool["kernel"], pool["stride"])
    return np.ascontiguousarray(maps).reshape(batch, -1), cache


def output_grad(layer, g: np.ndarray, pool_cache: tuple | None) -> np.ndarray:
    """The gradient w.r.t. h [B, features] (raise_output's result) → w.r.t. the product [out, N]."""
    if layer.conv is None:
        return np.ascontiguousarray(g.T)
    ho, wo = convshapes.conv_hw(layer)
    b = g.shape[0]
    maps = g.reshape(b, *convshapes.output_shape(layer))
    if pool_cache is not None:
        maps = maxpool_backward(maps, pool_cache)
    return np.ascontiguousarray(maps.transpose(1, 0, 2, 3)).reshape(layer.out_features, b * ho * wo)


def input_grad(layer, dcols: np.ndarray, batch: int) -> np.ndarray:
    """Backward-data's result [in_features, N] → the gradient w.r.t. h [B, features] (col2im for conv)."""
    if layer.conv is None:
        return np.ascontiguousarray(dcols.T)
    c = convshapes.conv_params(layer)
    dx = col2im(dcols, (batch, c["in_channels"], c["in_h"], c["in_w"]), c["kernel"], c["stride"], c["padding"])
    return dx.reshape(batch, -1)
