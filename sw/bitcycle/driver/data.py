"""Data for ``bitcycle run`` and the notebooks, as numpy arrays in [0, 1], flattened [N, features].

The samples and the train/test split are ``bitcycle.data``'s, the same ones ``bitcycle train``
uses, so the accelerator-trained and the torch-trained models are scored on the same test images
with or without torch (digits ship with the package; a board needs numpy only).
"""

from __future__ import annotations

import numpy as np

from bitcycle import data as _data

FASHION_MNIST_DIR = str(_data.FASHION_MNIST_DIR)  # Debian dataset-fashion-mnist


def load(name: str, data_dir=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(train_x, train_y, test_x, test_y, source) for ``name``: float64 [N, features], int64 labels."""
    a = _data.load(name, data_dir)
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64)  # noqa: E731
    return flat(a.train_x), a.train_y, flat(a.test_x), a.test_y, a.source
