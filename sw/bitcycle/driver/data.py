"""Data for ``bitcycle run`` and the notebooks, as numpy arrays in [0, 1], flattened [N, features].

With torch present (the development machine) this is exactly ``bitcycle.train.data``'s split, so
the accelerator-trained and the torch-trained models are scored on the same test images. On a
board image (no torch) digits come from sklearn with a numpy-seeded 80/20 split (same sizes).
"""

from __future__ import annotations

import numpy as np

from bitcycle.errors import BitCycleError


def load(name: str, data_dir=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(train_x, train_y, test_x, test_y, source) for ``name``."""
    try:
        import torch  # noqa: F401
        from bitcycle.train.data import load_dataset
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        ds = load_dataset(name, data_dir)
        flat = lambda t: t.reshape(t.shape[0], -1).numpy().astype(np.float64)  # noqa: E731
        return flat(ds.train_x), ds.train_y.numpy(), flat(ds.test_x), ds.test_y.numpy(), "bitcycle.train.data"
    if name != "digits":
        raise BitCycleError(f"data set {name!r} needs bitcycle.train.data (torch); on the board use --dataset digits")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise BitCycleError("--dataset digits needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    x = d.images.reshape(len(d.target), -1).astype(np.float64) / 16.0
    perm = np.random.default_rng(0).permutation(len(d.target))
    n_test = int(round(len(perm) * 0.2))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], d.target[tr], x[te], d.target[te], "sklearn (numpy split)"
