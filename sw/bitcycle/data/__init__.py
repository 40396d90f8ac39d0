"""Data sets with numpy only, below every stage that needs them (train, compile, driver, notebooks).

* Fashion-MNIST from its IDX files (Debian ``dataset-fashion-mnist`` or a ``--data-dir``);
* sklearn's 8×8 digits, shipped with the package (``digits.npz``, made by tools/make_digits_npz.py),
  so a board needs neither scikit-learn nor a download;
* CIFAR-10 from the python pickle batches (``data_batch_1..5``, ``test_batch``);
* :func:`to_input_grid`: samples in [0, 1] moved onto the zoo's 8-bit input quantiser grid.

Every loader returns :class:`Arrays`: float32 samples in [0, 1], shape N×C×H×W, int64 labels. torch
wrappers (tensors, batching, augmentation) live in ``bitcycle.train.data``; the driver flattens.
This package imports neither torch nor FINN (it runs on a PYNQ image with numpy < 2).
"""

from __future__ import annotations

import gzip
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bitcycle.errors import BitCycleError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
DIGITS_NPZ = Path(__file__).resolve().parent / "digits.npz"
DATASETS = ("fashion-mnist", "digits", "cifar10")
# the largest raw pixel code of each data set (samples in [0, 1] are code / PIXEL_MAX)
PIXEL_MAX = {"digits": 16.0, "fashion-mnist": 255.0, "cifar10": 255.0}
_IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Arrays:
    name: str
    train_x: np.ndarray   # float32 [N, C, H, W] in [0, 1]
    train_y: np.ndarray   # int64 [N]
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    augment: str = "none"  # the recipe train applies: "none" or "crop-flip"
    source: str = ""       # where the samples came from (for metrics.json)


# ----------------------------------------------------------------------------- readers
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed): magic 0 0 dtype ndim, big-endian dims, data."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise BitCycleError(f"cannot read IDX file {p}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise BitCycleError(f"{p} is not an IDX file (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise BitCycleError(f"{p}: IDX header cut short ({len(raw)} bytes for {ndim} dimensions)")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 1
    body = raw[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise BitCycleError(f"{p}: header says {dims} ({count * dtype.itemsize} bytes) but holds {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def load_fashion_mnist(root: str | Path | None = None) -> Arrays:
    root = Path(root) if root else FASHION_MNIST_DIR
    parts = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img = _find(root, f"{prefix}-images-idx3-ubyte")
        lab = _find(root, f"{prefix}-labels-idx1-ubyte")
        if img is None or lab is None:
            raise BitCycleError(f"Fashion-MNIST not found in {root} (need {prefix}-images-idx3-ubyte.gz and "
                                f"{prefix}-labels-idx1-ubyte.gz); install it with `apt-get install dataset-fashion-mnist` "
                                f"or pass --data-dir")
        x, y = read_idx(img), read_idx(lab)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise BitCycleError(f"Fashion-MNIST {split} files in {root} disagree: images {x.shape}, labels {y.shape}")
        parts += [(x.astype(np.float32) / np.float32(255.0))[:, None], y.astype(np.int64)]
    return Arrays("fashion-mnist", parts[0], parts[1], parts[2], parts[3], num_classes=10, source=f"IDX files in {root}")


def load_digits(path: str | Path | None = None) -> Arrays:
    """sklearn's 1,797 8×8 digits (codes 0..16 → [0, 1]) from the packaged digits.npz, with the fixed
    80/20 split stored in it (1,438 train, 359 test)."""
    p = Path(path) if path else DIGITS_NPZ
    try:
        with np.load(p) as f:
            images, target, tr, te = f["images"], f["target"], f["train_index"], f["test_index"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise BitCycleError(f"cannot read the digits data {p} ({type(err).__name__}: {err}); reinstall bitcycle "
                            "or regenerate it with tools/make_digits_npz.py") from None
    if images.shape != (1797, 8, 8) or len(target) != 1797 or len(tr) + len(te) != 1797:
        raise BitCycleError(f"{p}: expected 1797 8×8 digits with a train/test split, got images {images.shape}; "
                            "regenerate it with tools/make_digits_npz.py")
    x = (images.astype(np.float32) / np.float32(16.0))[:, None]
    y = target.astype(np.int64)
    tr, te = tr.astype(np.int64), te.astype(np.int64)
    return Arrays("digits", x[tr], y[tr], x[te], y[te], num_classes=10, source="bitcycle.data digits.npz")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # CIFAR-10's official format is a Python pickle; only load batches from a source you trust.
    with open(path, "rb") as f:
        try:
            d = pickle.load(f, encoding="bytes")
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
            raise BitCycleError(f"{path} is not a CIFAR-10 pickle batch ({type(err).__name__}: {err})") from None
    if not isinstance(d, dict):
        raise BitCycleError(f"{path} holds a {type(d).__name__}, not a CIFAR-10 python batch (a dict)")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise BitCycleError(f"{path} has no data/labels entries; expected a CIFAR-10 python batch")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise BitCycleError(f"{path}: data {data.shape} / {len(labels)} labels; expected N×3072 and N labels")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load_cifar10(root: str | Path | None) -> Arrays:
    if root is None:
        raise BitCycleError("CIFAR-10 needs --data-dir DIR holding data_batch_1..5 and test_batch "
                            "(cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted)")
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
    missing = [p.name for p in train_files + [root / "test_batch"] if not p.is_file()]
    if missing:
        raise BitCycleError(f"CIFAR-10 batches missing in {root}: {', '.join(missing)}; extract cifar-10-python.tar.gz "
                            f"(https://www.cs.toronto.edu/~kriz/cifar.html) there")
    xs, ys = zip(*(_cifar_batch(p) for p in train_files))
    tx, ty = _cifar_batch(root / "test_batch")
    to_f = lambda a: a.astype(np.float32) / np.float32(255.0)  # noqa: E731
    return Arrays("cifar10", to_f(np.concatenate(xs)), np.concatenate(ys), to_f(tx), ty, num_classes=10,
                  augment="crop-flip", source=f"CIFAR-10 pickles in {root}")


def load(name: str, data_dir: str | Path | None = None) -> Arrays:
    """Load ``name`` (fashion-mnist | digits | cifar10)."""
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    if name == "digits":
        return load_digits()
    if name == "cifar10":
        return load_cifar10(data_dir)
    raise BitCycleError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


# ----------------------------------------------------------------------------- the input grid
def to_input_grid(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """Samples in [0, 1] moved onto the zoo's ``bits``-bit input quantiser grid (2x − 1 in steps of
    1/(2^(bits−1) − 1)), returned in [0, 1] as float32: ``q = round((2x − 1)·m)``, ``(q/m + 1)/2``
    with m = 2^(bits−1) − 1. Values on the grid pass the quantiser unchanged, so Brevitas (which
    rounds half-to-even) and FINN's thresholds (which round half-way values up) cannot disagree."""
    if not 2 <= int(bits) <= 16:
        raise BitCycleError(f"input grid bits must be in 2..16, got {bits}")
    m = float(2 ** (int(bits) - 1) - 1)
    q = np.round((np.asarray(x, dtype=np.float64) * 2.0 - 1.0) * m)
    return ((q / m + 1.0) / 2.0).astype(np.float32)


__all__ = ["Arrays", "DATASETS", "DIGITS_NPZ", "FASHION_MNIST_DIR", "PIXEL_MAX", "load", "load_cifar10",
           "load_digits", "load_fashion_mnist", "read_idx", "to_input_grid"]
