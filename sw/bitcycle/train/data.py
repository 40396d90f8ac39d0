"""Data sets, all offline: Fashion-MNIST (Debian package, IDX), sklearn digits, CIFAR-10 (pickles).

Every data set is returned as in-memory float tensors in [0, 1], shape N×C×H×W; the models map
[0, 1] to [−1, 1] themselves (2x − 1, as FINN's BNN-PYNQ models), which is also what the 8-bit
input quantiser of the exported network expects. Batches come from :func:`batches`, a seeded
permutation per epoch, so a resumed run sees exactly the batches an uninterrupted one would.

Augmentation (``augment``): ``crop-flip`` = pad 4 + random 32×32 crop + horizontal flip (the usual
CIFAR-10 recipe), ``none`` for the grey-scale sets.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bitcycle.errors import BitCycleError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
DATASETS = ("fashion-mnist", "digits", "cifar10")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    augment: str = "none"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


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


def load_fashion_mnist(root: str | Path | None = None) -> Dataset:
    root = Path(root) if root else FASHION_MNIST_DIR
    parts = {}
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
        parts[split] = (torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))
    return Dataset("fashion-mnist", *parts["train"], *parts["test"], num_classes=10)


def load_digits(test_fraction: float = 0.2) -> Dataset:
    """sklearn's 1,797 8×8 digits (0..16 → [0, 1]); a fixed, seeded 80/20 split."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_test = int(round(len(y) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return Dataset("digits", x[tr], y[tr], x[te], y[te], num_classes=10)


def _unpickle(path: Path) -> dict:
    # CIFAR-10's official format is a Python pickle; only load batches from a source you trust.
    with open(path, "rb") as f:
        try:
            return pickle.load(f, encoding="bytes")
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
            raise BitCycleError(f"{path} is not a CIFAR-10 pickle batch ({type(err).__name__}: {err})") from None


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise BitCycleError(f"{path} has no data/labels entries; expected a CIFAR-10 python batch")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise BitCycleError(f"{path}: data {data.shape} / {len(labels)} labels; expected N×3072 and N labels")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load_cifar10(root: str | Path | None) -> Dataset:
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
    to_t = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)  # noqa: E731
    return Dataset("cifar10", to_t(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)), to_t(tx),
                   torch.from_numpy(ty), num_classes=10, augment="crop-flip")


def load_dataset(name: str, data_dir: str | Path | None = None, train_limit: int | None = None,
                 test_limit: int | None = None, augment: bool = True) -> Dataset:
    """Load ``name`` (fashion-mnist | digits | cifar10); ``*_limit`` keep the first N samples."""
    if name == "fashion-mnist":
        ds = load_fashion_mnist(data_dir)
    elif name == "digits":
        ds = load_digits()
    elif name == "cifar10":
        ds = load_cifar10(data_dir)
    else:
        raise BitCycleError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return limit_dataset(ds, train_limit, test_limit, augment)


def limit_dataset(ds: Dataset, train_limit: int | None = None, test_limit: int | None = None,
                  augment: bool = True) -> Dataset:
    """A view of ``ds`` with only the first N train / test samples (and augmentation off if asked)."""
    from dataclasses import replace

    ds = replace(ds)
    for limit, attr in ((train_limit, "train"), (test_limit, "test")):
        if limit is not None:
            if limit < 1:
                raise BitCycleError(f"--{attr}-limit must be >= 1")
            setattr(ds, f"{attr}_x", getattr(ds, f"{attr}_x")[:limit])
            setattr(ds, f"{attr}_y", getattr(ds, f"{attr}_y")[:limit])
    if not augment:
        ds.augment = "none"
    return ds


# ----------------------------------------------------------------------------- batching
def _crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :])                       # n×h
    cols = (dx[:, None] + torch.arange(w)[None, :])                       # n×w
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # n×h×w×c
    return out.permute(0, 3, 1, 2).contiguous()


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    """Full batches only (drop_last): every step has the same batch, BatchNorm never sees 1 sample."""
    return n_samples // batch_size


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, epoch: int, seed: int, augment: str = "none",
            rank: int = 0, world: int = 1):
    """Yield (x, y) of one epoch: a permutation seeded by (seed, epoch); rank r of ``world`` takes
    rows r::world of each global batch."""
    gen = torch.Generator().manual_seed(int(seed) * 7919 + int(epoch))
    perm = torch.randperm(len(y), generator=gen)
    aug_gen = torch.Generator().manual_seed(int(seed) * 104729 + int(epoch) * 31 + rank)
    for s in range(steps_per_epoch(len(y), batch_size)):
        idx = perm[s * batch_size:(s + 1) * batch_size][rank::world]
        bx = x[idx]
        if augment == "crop-flip":
            bx = _crop_flip(bx, aug_gen)
        yield bx, y[idx]
