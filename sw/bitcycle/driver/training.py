"""The training step on the host around the engine's products (Wang et al.'s memory-efficient
BNN training, with CycleBNN's cyclic gradient precision):

    forward          z_l  = W_l · a_l               (bits = in_bits: 8 for layer 0, 1 after)
    backward-data    da_l = W_lᵀ · q(dz_l)          (bits = b_g from the schedule)
    backward-weight  dW_l = q(dz_l) · sign(a_l)ᵀ    (bits = b_g; only sign(a) is kept)

BatchNorm, the loss, the gradient quantiser, Adam on latent weights and the schedule run here, on
the host; the products are :class:`~bitcycle.driver.accelerator.Accelerator`'s. With ``pow2``
scales a product is one engine job whatever the block size: the blocks' power-of-two scales are
folded into the integer codes (:func:`bitcycle.driver.planning.fold_scales`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bitcycle.driver import convlower
from bitcycle.driver.hostmath import quantize_grad, quantize_grad_blocks, quantize_input, sign_pm1, softmax_xent
from bitcycle.driver.jobs import PER_STEP, EngineJobs
from bitcycle.errors import BitCycleError


class TrainingStep(EngineJobs):
    """The model on the host: inference, one training step, evaluation (the base of Accelerator,
    which holds the state below and implements the products)."""

    latent: list[Any]
    norms: list[Any]
    optimizer: Any
    rng: np.random.Generator
    sign_w: list[Any]
    schedule: Any
    step: int
    grad_bits: int | None
    grad_scale: str
    grad_block: int
    quantise_weight_grad: bool

    # the products on operands the driver built itself (no operand checks; the public
    # forward_layer/backward_data/weight_grad/write_weights check theirs, then call these)
    def _forward_layer(self, i: int, x: np.ndarray, bits: int) -> np.ndarray:
        raise NotImplementedError

    def backward_data(self, layer, ints, bits: int | None = None, row_scales=None) -> np.ndarray:
        raise NotImplementedError

    def _backward_data(self, i: int, dy: np.ndarray, bits: int, scales: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def _weight_grad(self, acts, q: np.ndarray, in_bits: int, bits: int) -> np.ndarray:
        raise NotImplementedError

    def _set_weights(self, i: int, w: np.ndarray) -> None:
        raise NotImplementedError

    def set_bits(self, bits: int) -> None:
        raise NotImplementedError

    def quantize(self, x) -> np.ndarray:
        spec = self._need_spec()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != spec.input.features:
            raise BitCycleError(f"input has {x.shape[1]} features per sample, the model expects {spec.input.features}")
        return quantize_input(x, spec.input.bits, spec.input.scale, spec.input.offset)

    def _forward(self, x, train: bool):
        spec = self._need_spec()
        h = self.quantize(x)  # [B, features]; each layer's operand: [in, B] (dense) or im2col's [in, B·H'·W'] (conv)
        batch = h.shape[0]
        caches = []
        for i, ls in enumerate(spec.layers):
            a, a_bits = convlower.lower_input(ls, h), convlower.operand_bits(ls)
            z = self._forward_layer(i, a, a_bits).astype(np.float64)
            bn = self.norms[i]
            y, bn_cache = bn.forward(z, train) if bn is not None else (z, None)
            # only the sign of an activation is kept for backward (1 bit)
            h, pool = convlower.raise_output(ls, sign_pm1(y) if ls.act == "sign" else y, batch)
            caches.append({"a": a, "bits": a_bits, "bn": bn_cache, "mask": np.abs(y) <= 1.0, "pool": pool})
        return h, caches  # logits [B, C]

    def forward(self, x) -> np.ndarray:
        """Inference logits [B, classes] (running BatchNorm statistics)."""
        logits, _ = self._forward(x, train=False)
        return logits

    def predict(self, x) -> np.ndarray:
        return np.argmax(self.forward(x), axis=1)

    def train_step(self, x, y) -> dict:
        """One SGD step on a batch: the products on the engine, the rest on the host. Returns metrics."""
        spec = self._need_spec()
        y = np.asarray(y)
        x = np.asarray(x)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise BitCycleError(f"labels must be a 1-D array with one label per sample ({x.shape[0]}), got {list(y.shape)}")
        if y.size and (y.min() < 0 or y.max() >= spec.classes):
            raise BitCycleError(f"labels must be in 0..{spec.classes - 1}, found {int(y.min())}..{int(y.max())}")
        if self.schedule is not None:
            self.set_bits(int(self.schedule.bits(self.step)))
        bits = self._check_bits(self.grad_bits, "grad_bits")  # set by load()/set_bits()
        before = self._per_step_snapshot()
        logits, caches = self._forward(x, train=True)
        loss, dlogits, _ = softmax_xent(logits, y)
        g = dlogits  # [B, C]: the gradient w.r.t. a layer's output h [B, features]
        params, grads = {}, {}
        last = len(spec.layers) - 1
        for i in reversed(range(len(spec.layers))):
            ls, cache, bn = spec.layers[i], caches[i], self.norms[i]
            g = convlower.output_grad(ls, g, cache["pool"])  # → w.r.t. the product [out, N] (through the pool)
            if i < last:
                g = g * cache["mask"]  # straight-through estimator of sign (|y| <= 1)
            if bn is not None:
                dz, dgamma, dbeta = bn.backward(g, cache["bn"])
                params[f"{i}.gamma"], grads[f"{i}.gamma"] = bn.gamma, dgamma
                params[f"{i}.beta"], grads[f"{i}.beta"] = bn.beta, dbeta
            else:
                dz = g
            dw, da = self._backward_products(i, dz, cache["a"], cache["bits"], bits)
            params[f"{i}.w"], grads[f"{i}.w"] = self.latent[i], dw
            if i > 0:
                g = convlower.input_grad(ls, da, x.shape[0])  # col2im for a conv
        self.optimizer.step(params, grads)
        changed = 0
        for i in range(len(spec.layers)):
            np.clip(self.latent[i], -1.0, 1.0, out=self.latent[i])
            new = sign_pm1(self.latent[i])
            flips = int(np.count_nonzero(new != self.sign_w[i]))
            if flips:
                self._set_weights(i, new)
                changed += flips
        self.step += 1
        after = self._per_step_snapshot()
        for key in PER_STEP:
            self._train_totals[key] += after[key] - before[key]
        self._train_steps += 1
        acc = float(np.mean(np.argmax(logits, axis=1) == y))
        return {"step": self.step, "loss": loss, "acc": acc, "grad_bits": bits, "weight_flips": changed}

    def _backward_products(self, i: int, dz: np.ndarray, acts: np.ndarray, in_bits: int, bits: int):
        """(dW, dx) of layer i from its float error dz [out, B], both products on the engine.

        Scales as ``bitcycle train`` (``bitcycle.quant.grad``): ``tensor`` quantises dz once for
        both products; ``row``/``pow2`` quantise it per output channel for backward-weight and per
        sample for backward-data, in blocks of ``grad_block`` along each product's reduction axis
        (the batch, resp. the output channels). Block scales that are integer multiples of their
        row's smallest (pow2's powers of two) are folded into the codes: one product, its exact
        integer result times the row's smallest scale; other block scales (``row``) take one
        product per block of samples. dW is then quantised too (``quantise_weight_grad``).
        """
        rng, blk = self.rng, self.grad_block
        pow2 = self.grad_scale == "pow2"
        max_bits = self._need_spec().engine.max_bits
        if self.grad_scale == "tensor":
            q, s = quantize_grad(dz, bits, rng)
            dw = self._weight_grad(acts, q, in_bits, bits) * s
            dx = self._backward_data(i, q, bits) * s if i > 0 else None
        else:
            # the codes stay in the quantiser's block layout until the products need them
            q_x = quantize_grad_blocks(dz, bits, rng, keep_axis=1, block_axis=0, block=blk, pow2=pow2) if i > 0 else None
            q_w = quantize_grad_blocks(dz, bits, rng, keep_axis=0, block_axis=1, block=blk, pow2=pow2)
            folded = q_w.folded(max_bits)  # planning.fold_scales of (codes, scales), on the blocks
            if folded is not None:
                codes, codes_bits, row_scale = folded
                dw = self._weight_grad(acts, codes, in_bits, codes_bits) * row_scale
            else:
                q, s_w = q_w.codes(), np.broadcast_to(q_w.scales(), dz.shape)
                n = dz.shape[1]
                step = blk or n
                dw = np.zeros((dz.shape[0], acts.shape[0]))
                for n0 in range(0, n, step):  # one backward-weight product per block of samples
                    part = self._weight_grad(acts[:, n0:n0 + step], q[:, n0:n0 + step], in_bits, bits)
                    dw += part * s_w[:, n0:n0 + 1]
            dx = None
            if q_x is not None:  # as backward_data(i, codes, bits, row_scales=scales)
                folded = q_x.folded(max_bits)
                if folded is not None:
                    codes, codes_bits, col_scale = folded
                    dx = self._backward_data(i, codes, codes_bits) * col_scale
                else:
                    q = q_x.codes()
                    dx = self._backward_data(i, q, bits, np.broadcast_to(q_x.scales(), q.shape))
        if self.quantise_weight_grad:  # dW → Q_b(dW) too, as `bitcycle train` does by default
            row = self.grad_scale != "tensor"  # per output channel and block of inputs, as bitcycle.quant.grad
            dw = quantize_grad_blocks(dw, bits, rng, keep_axis=0 if row else None, block_axis=1 if row else None,
                                      block=blk if row else 0, pow2=pow2).dequantised()  # = codes · scales
        return dw, dx

    def evaluate(self, x, y, batch: int = 256) -> float:
        y = np.asarray(y)
        correct = 0
        for s in range(0, len(y), batch):
            correct += int(np.sum(self.predict(x[s:s + batch]) == y[s:s + batch]))
        return correct / max(len(y), 1)
