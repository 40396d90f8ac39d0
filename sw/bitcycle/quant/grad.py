"""The gradient quantiser: b signed bits, dynamic scale(s), seeded stochastic rounding.

The hardware engine multiplies a binary operand by a b-bit two's-complement integer, so the error
signal dy that enters a binary layer's backward pass must be such an integer times one scale:

    s = max|g| / (2^(b−1) − 1)            (symmetric, "narrow" range: q ∈ [−(2^(b−1)−1), 2^(b−1)−1])
    q = clamp(floor(g/s + u), ±(2^(b−1)−1)),   u ~ U[0, 1) (counter-based, below)

so E[q·s] = g (stochastic rounding is unbiased). For b = 1 the engine's operand is bipolar ±1:
q = +1 with probability (1 + g/s)/2, else −1, with s = max|g| — again unbiased. b ≥ 32 means no
quantisation (the FP32 baseline). An all-zero tensor quantises to zeros with scale 1; with row
scales an all-zero row gets scale 0. This is the per-tensor form; rows follow.

Scale granularity (``grad_scale``)
----------------------------------
``tensor``: one scale for dy and one for dW, as above — dy is quantised once and both backward
products use it.

``row``: one scale per *output row of each engine product*, so every product is still an integer
matmul on the engine times per-row scales applied by the host afterwards:

    backward-data    dx[n]   = s_n · Σ_o q[n, o]·W[o]      q, s_n: dy quantised per sample n
    backward-weight  dW[o]   = t_o · Σ_n q'[n, o]·x[n]     q', t_o: dy quantised per output channel o
    weight gradient  dW[o]  → quantised per output channel o (``quantise_weight_grad``), in blocks of its inputs

A per-sample scale cannot be used for dW (it does not factor out of a sum over samples), nor a
per-channel one for dx, hence two quantisations of the same dy. At 2 bits a per-tensor scale is set
by the single largest |dy| of the batch and rounds most of the others to 0 or ±1 at random; per-row
scales follow each sample's (channel's) own range, which narrows cosine:2-8's gap to fixed:8
(measured in docs/training.md's bench-train section).

``pow2``: as ``row``, but every block's scale is a power of two, 2^e with e the least integer such
that 2^e·qmax ≥ max|g| of the block, raised to at least the row's largest e − POW2_SPAN (block
floating point with a shared exponent per row and a 2-bit micro-exponent per block, as the "shared
microexponents" of Rouhani et al., ISCA 2023). A row's blocks then differ by a shift of at most 3
bits, so an engine job sums them exactly as integers q·2^(e − e_min) of at most b + 3 bits, and the
host applies the row's 2^e_min: one job per product instead of one per block.

The uniforms u (counter-based, no random tensor drawn per value)
-----------------------------------------------------------------
One fixed table T of L = 2^20 values (j + ½)/L in the order of a hash (lowbias32) of j — a
permutation of an L-point grid, built once — and one 31-bit *key* per call, drawn from the layer's
seeded torch.Generator (one scalar). Element i of the quantiser's [K, O, NB, B] layout (chunk
c = i // L) takes u = T[(i mod L + off_c) mod L] with off_c = (key + c·0x9E3779B1) mod L: for
n ≤ L elements u is a *view* of the doubled table, so a call costs one scalar draw, no random
values. Each u is uniform on the grid (E[q·s] = g up to 1/(2L)); within a call the values are
distinct grid points; calls differ by their window. ``bitcycle.driver.hostmath.quantize_grad``
builds the same table and layout in numpy: same key, same codes (tests/test_quant_grad.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from bitcycle.errors import BitCycleError
from bitcycle.golden import stochastic

NO_QUANT_BITS = 32
GRAD_SCALES = ("row", "tensor", "pow2")
POW2_SPAN = stochastic.POW2_SPAN  # pow2 scales: a block's exponent is at least its row's largest minus 3
DEFAULT_GRAD_BLOCK = 16  # row scales: one per 16 values along each product's reduction axis (docs/training.md)
GRAD_SCALE_HELP = ("gradient quantiser scales: one per output row of each backward product (row, default: per sample "
                   "for dx, per output channel for dW), the same as powers of two (pow2: block floating point, one "
                   "engine job per product) or one per tensor (tensor)")


class _Blocks:
    """g laid out as G = [K, O, NB, B] such that one scale covers each G[k, :, nb, :]: K the
    indices of ``keep_dim`` (1 without), NB the blocks of ``block`` indices of ``block_dim`` (the
    last one zero-padded), O everything else. Scales are then amax over dims (1, 3) of a
    [K, 1, NB, 1] tensor — small — and only the codes are full-sized (this runs on every binary
    layer's dy twice per step, so it is kept to a few fused passes)."""

    def __init__(self, g: torch.Tensor, keep_dim: int | None, block_dim: int | None, block: int):
        self.shape, self.keep, self.block_dim = g.shape, None, None
        if keep_dim is None:
            self.G = g.reshape(1, 1, 1, -1)
            return
        self.keep = keep_dim % g.dim()
        t = g.movedim(self.keep, 0)
        if block and block_dim is not None and block < g.shape[block_dim % g.dim()]:
            bd = block_dim % g.dim()
            if bd == self.keep:
                raise BitCycleError("gradient blocks must run along another axis than the one kept")
            self.block_dim = bd + 1 if bd < self.keep else bd  # its place once keep_dim is first
            t = t.movedim(self.block_dim, -1)
            self.moved_shape, n = t.shape, t.shape[-1]
            self.pad = (-n) % block
            if self.pad:
                t = F.pad(t, (0, self.pad))
            self.G = t.reshape(t.shape[0], -1, (n + self.pad) // block, block)
        else:
            self.G = t.reshape(t.shape[0], 1, 1, -1)

    def unblock(self, G: torch.Tensor) -> torch.Tensor:
        """A tensor in G's layout back in g's shape."""
        if self.keep is None:
            return G.reshape(self.shape)
        if self.block_dim is None:
            return G.reshape(self.shape[self.keep], *(n for d, n in enumerate(self.shape) if d != self.keep)).movedim(0, self.keep)
        t = G.reshape(*self.moved_shape[:-1], -1)
        if self.pad:
            t = t[..., : self.moved_shape[-1]]
        return t.movedim(-1, self.block_dim).movedim(0, self.keep)

    def scale_like_g(self, scale: torch.Tensor) -> torch.Tensor:
        """A [K, 1, NB, 1] scale broadcastable against g: 0-d, 1 along every dim but ``keep_dim``, or g's shape."""
        if self.keep is None:
            return scale.reshape(())
        if self.block_dim is None:
            shape = [1] * len(self.shape)
            shape[self.keep] = self.shape[self.keep]
            return scale.reshape(shape)
        return self.unblock(scale.expand(self.G.shape))


UNIFORM_BITS = stochastic.UNIFORM_BITS
_TABLE: torch.Tensor | None = None


def uniform_table() -> torch.Tensor:
    """The doubled table [T, T] of ``bitcycle.golden.stochastic`` as a torch tensor, built once."""
    global _TABLE
    if _TABLE is None:
        _TABLE = torch.from_numpy(np.array(stochastic.uniform_table()))
    return _TABLE


def draw_key(generator: torch.Generator | int | None) -> int:
    """The call's key: an int as given, else one 31-bit draw from ``generator`` (None: torch's global one)."""
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return int(generator) & 0x7FFFFFFF
    return int(torch.randint(0, 1 << 31, (1,), generator=generator).item())


def counter_uniform(shape, key: int) -> torch.Tensor:
    """u for ``shape`` (row-major element index i) and ``key``; a view of the table for ≤ L values."""
    n, t = math.prod(shape), uniform_table()
    parts = [t[start:start + m] for start, m in stochastic.window_starts(n, key)]
    if len(parts) == 1:
        return parts[0].view(shape)
    return (torch.cat(parts) if parts else t[:0]).view(shape)


def _pow2_scales(amax: torch.Tensor, qmax: float) -> torch.Tensor:
    """pow2 scales of [K, 1, NB, 1] float32 block maxima (``bitcycle.golden.stochastic``), float32."""
    return torch.from_numpy(stochastic.pow2_block_scales(amax.detach().cpu().numpy(), qmax)).float()


def _quantise(g: torch.Tensor, bits: int, generator: torch.Generator | int | None, keep_dim: int | None = None,
              block_dim: int | None = None, block: int = 0,
              pow2: bool = False) -> tuple[torch.Tensor, torch.Tensor, _Blocks]:
    """(q, scale, layout): q integer-valued float32 in the layout's G = [K, O, NB, B] form, scale
    [K, 1, NB, 1]. ``keep_dim`` None: one scale; else one per index of ``keep_dim`` — and per block
    of ``block`` indices of ``block_dim``."""
    if not 1 <= int(bits) < NO_QUANT_BITS:
        raise BitCycleError(f"gradient bits={bits} must be in 1..31 to quantise (32 = no quantisation)")
    bits = int(bits)
    lay = _Blocks(g.detach().float(), keep_dim, block_dim, block)
    G = lay.G
    amax = G.abs().amax(dim=(1, 3), keepdim=True)
    if not bool(torch.isfinite(amax).all()):
        raise BitCycleError("gradient holds inf/NaN; lower the learning rate")
    u = counter_uniform(G.shape, draw_key(generator))
    rows = keep_dim is not None
    if not rows and amax.item() == 0:
        return torch.zeros_like(G), torch.ones_like(amax), lay
    zero = amax == 0  # rows of zeros: any code times scale 0 is 0 (b = 1 has no zero code)
    safe = torch.where(zero, 1.0, amax) if rows else amax
    if pow2 and rows:  # powers of two: G/s is exact in float32
        qmax = 1.0 if bits == 1 else float((1 << (bits - 1)) - 1)
        scale = _pow2_scales(amax, qmax)
        safe_scale = torch.where(zero, 1.0, scale)
        if bits == 1:
            return torch.where(u * 2.0 - 1.0 < G / safe_scale, 1.0, -1.0), scale, lay
        return torch.addcdiv(u, G, safe_scale).floor_().clamp_(-qmax, qmax), scale, lay
    if bits == 1:
        # +1 with probability (1 + g/s)/2: u < (1 + g/s)/2  ⇔  2u − 1 < g/s
        q = torch.where(u * 2.0 - 1.0 < G / safe, 1.0, -1.0)
        return q, (torch.where(zero, 0.0, amax) if rows else amax), lay
    qmax = float((1 << (bits - 1)) - 1)
    scale = safe / qmax
    q = torch.addcdiv(u, G, scale).floor_().clamp_(-qmax, qmax)  # (G/s + u), one pass, then in place
    return q, (torch.where(zero, 0.0, scale) if rows else scale), lay


def quantise_grad(g: torch.Tensor, bits: int, generator: torch.Generator | None = None,
                  keep_dim: int | None = None, block_dim: int | None = None, block: int = 0,
                  pow2: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (q, scale) with q an int32 tensor of b-bit signed integers and g ≈ q·scale (unbiased);
    one scale, or one per index of ``keep_dim`` (and block of ``block_dim``, powers of two with
    ``pow2``), broadcastable against q."""
    q, scale, lay = _quantise(g, bits, generator, keep_dim, block_dim, block, pow2)
    return lay.unblock(q).to(torch.int32), lay.scale_like_g(scale)


def fake_quantise_grad(g: torch.Tensor, bits: int, generator: torch.Generator | None = None,
                       keep_dim: int | None = None, block_dim: int | None = None, block: int = 0,
                       pow2: bool = False) -> torch.Tensor:
    """g quantised to b bits and scaled back (same dtype as g); bits ≥ 32 returns g unchanged."""
    if bits >= NO_QUANT_BITS:
        return g
    q, scale, lay = _quantise(g, bits, generator, keep_dim, block_dim, block, pow2)
    return lay.unblock(q.mul_(scale)).to(g.dtype)


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


# ----------------------------------------------------------------------------- row scales
ConvArgs = tuple  # (stride, padding, dilation, groups) of a conv2d; None for a linear layer


def product(x: torch.Tensor, w: torch.Tensor, conv_args: ConvArgs | None) -> torch.Tensor:
    """The forward product of a binary layer: x·Wᵀ (linear) or conv2d(x, W) (no bias)."""
    return F.linear(x, w) if conv_args is None else F.conv2d(x, w, None, *conv_args)


def input_grad(dy: torch.Tensor, w: torch.Tensor, x_shape, conv_args: ConvArgs | None) -> torch.Tensor:
    """Backward-data product dx from dy and the weights."""
    return dy @ w if conv_args is None else torch.nn.grad.conv2d_input(x_shape, w, dy, *conv_args)


def weight_grad(dy: torch.Tensor, x: torch.Tensor, w_shape, conv_args: ConvArgs | None) -> torch.Tensor:
    """Backward-weight product dW from dy and the layer input."""
    if conv_args is None:
        return dy.reshape(-1, dy.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
    return torch.nn.grad.conv2d_weight(x, w_shape, dy, *conv_args)


class RowScaledGrad:
    """One layer's ``row``-scale gradient quantisation for one step (module docstring).

    Each backward product is taken as the matrix product the engine runs (a conv lowered im2col
    style), and dy gets one scale per row of that product and block of ``block`` along its
    reduction axis:

    * backward-data: rows = dy's positions (a sample; a sample and pixel for a conv), reduction =
      output channels. The host overlap-adds (col2im) the scaled per-position results.
    * backward-weight: rows = output channels, reduction = samples (× pixels for a conv).
    """

    def __init__(self, bits: int, generator: torch.Generator | None, channel_dim: int, quantise_weight_grad: bool = True,
                 block: int = 0, pow2: bool = False):
        self.bits, self.generator = int(bits), generator
        self.channel_dim, self.quantise_weight_grad = channel_dim, quantise_weight_grad
        self.block, self.pow2 = int(block), bool(pow2)

    def _as_rows(self, dy: torch.Tensor, channels_last: bool) -> torch.Tensor:
        """dy as the product's operand matrix: [positions, channels] or [channels, positions]."""
        c = self.channel_dim % dy.dim()
        return dy.movedim(c, -1).reshape(-1, dy.shape[c]) if channels_last else dy.movedim(c, 0).reshape(dy.shape[c], -1)

    def _from_rows(self, rows: torch.Tensor, like: torch.Tensor, channels_last: bool) -> torch.Tensor:
        c = self.channel_dim % like.dim()
        moved = like.movedim(c, -1) if channels_last else like.movedim(c, 0)
        return rows.reshape(moved.shape).movedim(-1 if channels_last else 0, c)

    def for_input_grad(self, dy: torch.Tensor) -> torch.Tensor:
        """Per position of dy, in blocks of output channels (the reduction axis of dx = dy·W)."""
        rows = fake_quantise_grad(self._as_rows(dy, True), self.bits, self.generator, keep_dim=0, block_dim=1, block=self.block,
                                  pow2=self.pow2)
        return self._from_rows(rows, dy, True)

    def for_weight_grad(self, dy: torch.Tensor) -> torch.Tensor:
        """Per output channel, in blocks of positions (the reduction axis of dW = dyᵀ·x)."""
        rows = fake_quantise_grad(self._as_rows(dy, False), self.bits, self.generator, keep_dim=0, block_dim=1, block=self.block,
                                  pow2=self.pow2)
        return self._from_rows(rows, dy, False)

    def weight_gradient(self, dw: torch.Tensor) -> torch.Tensor:
        """dW itself to b bits: one scale per output channel and block of ``block`` of its inputs
        (a conv's in×kh×kw flattened). The host applies it, so no engine job constrains it; one
        scale over a whole 288..2048-input row made 2-bit dW the larger half of the CNN's loss."""
        if not self.quantise_weight_grad:
            return dw
        rows = dw.reshape(dw.shape[0], -1)
        return fake_quantise_grad(rows, self.bits, self.generator, keep_dim=0, block_dim=1, block=self.block,
                                  pow2=self.pow2).reshape(dw.shape)

    def backward(self, dy, x_shape, w_shape, load_w, load_x, conv_args: ConvArgs | None, needs: tuple) -> tuple:
        """(dx, dW) of a layer's product; ``load_w``/``load_x`` give the saved operands on demand."""
        dx = input_grad(self.for_input_grad(dy), load_w(), x_shape, conv_args) if needs[0] else None
        dw = None
        if needs[1]:
            dw = self.weight_gradient(weight_grad(self.for_weight_grad(dy), load_x(), w_shape, conv_args))
        return dx, dw


class RowScaledProductFn(torch.autograd.Function):
    """``product(x, w)`` whose backward quantises dy with :class:`RowScaledGrad` (saves x and w)."""

    @staticmethod
    def forward(ctx, x, w, conv_args, row_grad):
        ctx.save_for_backward(x, w)
        ctx.meta = (conv_args, row_grad)
        return product(x, w, conv_args)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        conv_args, row_grad = ctx.meta
        dx, dw = row_grad.backward(dy, x.shape, w.shape, lambda: w, lambda: x, conv_args, ctx.needs_input_grad[:2])
        return dx, dw, None, None


def row_scaled_product(x, w, conv_args: ConvArgs | None, row_grad: RowScaledGrad | None) -> torch.Tensor:
    """``product(x, w)``; with ``row_grad`` its backward quantises dy per row (module docstring)."""
    if row_grad is None:
        return product(x, w, conv_args)
    return RowScaledProductFn.apply(x, w, conv_args, row_grad)


class GradQuantMixin:
    """State a binary layer needs for gradient quantisation: the bit-width and its own generator.

    ``grad_bits`` is set for every step by the trainer via :func:`set_grad_bits`; the generator is
    seeded via :func:`seed_grad_quant` and its state travels in checkpoints
    (:func:`grad_quant_state` / :func:`load_grad_quant_state`) so a resumed run is identical.
    """

    grad_bits: int = NO_QUANT_BITS
    quantise_weight_grad: bool = True
    grad_scale: str = "row"
    grad_block: int = DEFAULT_GRAD_BLOCK

    def _init_grad_quant(self, quantise_weight_grad: bool = True, grad_scale: str = "row",
                         grad_block: int = DEFAULT_GRAD_BLOCK) -> None:
        self.grad_bits = NO_QUANT_BITS
        self.quantise_weight_grad = quantise_weight_grad
        self.grad_scale = check_grad_scale(grad_scale)
        self.grad_block = check_grad_block(grad_block)
        self.grad_generator = torch.Generator()
        self.grad_generator.manual_seed(0)


def grad_quant_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, GradQuantMixin)]


def check_grad_scale(scale: str) -> str:
    if scale not in GRAD_SCALES:
        raise BitCycleError(f"gradient scale {scale!r} is unknown; choose one of {', '.join(GRAD_SCALES)}")
    return scale


def check_grad_block(block: int) -> int:
    if isinstance(block, bool) or not isinstance(block, int) or block < 0:
        raise BitCycleError(f"gradient block {block!r} must be an integer >= 0 (0 = one scale per whole row)")
    return block


def set_grad_scale(model: torch.nn.Module, scale: str, block: int | None = None) -> int:
    """Set the scale granularity (``tensor`` or ``row``, and the row scales' ``block``; None keeps
    it) of every binary layer; returns how many."""
    check_grad_scale(scale)
    if block is not None:
        check_grad_block(block)
    layers = grad_quant_layers(model)
    for layer in layers:
        layer.grad_scale = scale
        if block is not None:
            layer.grad_block = block
    return len(layers)


def set_weight_grad_quant(model: torch.nn.Module, on: bool) -> int:
    """Quantise dW itself too (``on``) or leave it in float, in every binary layer; returns how many."""
    layers = grad_quant_layers(model)
    for layer in layers:
        layer.quantise_weight_grad = bool(on)
    return len(layers)


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
