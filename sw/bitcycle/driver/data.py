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
    if name == "fashion-mnist":
        return _fashion_mnist(data_dir)
    if name != "digits":
        raise BitCycleError(f"unknown data set {name!r} for the driver; use digits or fashion-mnist")
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


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian dataset-fashion-mnist


def _idx(path) -> np.ndarray:
    import gzip
    import struct

    with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise BitCycleError(f"{path} is not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * raw[3], raw[4:4 + 4 * raw[3]])
    return np.frombuffer(raw[4 + 4 * raw[3]:], dtype=np.uint8).reshape(dims)


def _fashion_mnist(data_dir=None):
    """Fashion-MNIST from its IDX files with numpy only (the board has no torch)."""
    from pathlib import Path

    root = Path(data_dir or FASHION_MNIST_DIR)
    parts = []
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            cands = [root / f"{prefix}-{kind}-ubyte.gz", root / f"{prefix}-{kind}-ubyte"]
            path = next((c for c in cands if c.is_file()), None)
            if path is None:
                raise BitCycleError(f"Fashion-MNIST file {cands[0].name} not found in {root}; copy the four IDX files there")
            parts.append(_idx(path))
    (xtr, ytr, xte, yte) = parts
    flat = lambda a: a.reshape(len(a), -1).astype(np.float64) / 255.0  # noqa: E731
    return flat(xtr), ytr.astype(np.int64), flat(xte), yte.astype(np.int64), "IDX files (numpy)"
