"""Max-pool of ±1 activations, as ``hw/rtl/bitcycle_maxpool.sv`` computes it on FINN's stream.

Activations are bits (1 = +1, 0 = −1, FINN's BINARY/BIPOLAR codes), so the max over a window is
the OR of its bits. FINN's depthwise sliding window delivers each output pixel as channel folds of
``k2`` consecutive beats (one per window position) of ``pe`` channels: layout
[pixels, channels/pe, k2, pe]. numpy only.
"""

from __future__ import annotations

import numpy as np

from bitcycle.errors import BitCycleError


def binary_maxpool_stream(beats: np.ndarray, k2: int) -> np.ndarray:
    """Beats [n, pe] of bits in stream order → [n / k2, pe]: the OR of each run of k2 beats."""
    b = np.asarray(beats)
    if b.ndim != 2:
        raise BitCycleError(f"binary_maxpool_stream: beats must be [n, pe], got shape {b.shape}")
    if k2 < 1 or len(b) % k2:
        raise BitCycleError(f"binary_maxpool_stream: {len(b)} beats are not whole windows of k2={k2}")
    if b.size and not np.isin(b, (0, 1)).all():
        raise BitCycleError("binary_maxpool_stream: beats must be bits 0/1 (1 = +1)")
    return b.reshape(-1, k2, b.shape[1]).max(axis=1).astype(np.int64)


def binary_maxpool_nhwc(x: np.ndarray, k: int) -> np.ndarray:
    """Max-pool k×k, stride k, of bits [h, w, c] → [h // k, w // k, c] (the layer's meaning)."""
    a = np.asarray(x)
    h, w, c = a.shape
    oh, ow = h // k, w // k
    return a[:oh * k, :ow * k].reshape(oh, k, ow, k, c).max(axis=(1, 3)).astype(np.int64)
