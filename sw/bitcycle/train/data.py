"""Data sets as torch tensors: Fashion-MNIST (Debian package, IDX), sklearn digits, CIFAR-10 (pickles),
read by ``bitcycle.data`` (numpy only, shared with the driver) and wrapped here.

Every data set is returned as in-memory float tensors in [0, 1], shape N×C×H×W; the models map
[0, 1] to [−1, 1] themselves (2x − 1, as FINN's BNN-PYNQ models), which is also what the 8-bit
input quantiser of the exported network expects. Batches come from :func:`batches`, a seeded
permutation per epoch, so a resumed run sees exactly the batches an uninterrupted one would.

Augmentation (``augment``): ``crop-flip`` = pad 4 + random 32×32 crop + horizontal flip (the usual
CIFAR-10 recipe), ``none`` for the grey-scale sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

import bitcycle.data as _np_data
from bitcycle.errors import BitCycleError

DATASETS = _np_data.DATASETS
FASHION_MNIST_DIR = _np_data.FASHION_MNIST_DIR
read_idx = _np_data.read_idx  # the readers live in bitcycle.data (numpy only, shared with the driver)


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


def from_arrays(a: _np_data.Arrays) -> Dataset:
    """bitcycle.data's numpy arrays as tensors (shared memory, no copy)."""
    t = torch.from_numpy
    return Dataset(a.name, t(a.train_x), t(a.train_y), t(a.test_x), t(a.test_y), num_classes=a.num_classes,
                   augment=a.augment)


def load_fashion_mnist(root: str | Path | None = None) -> Dataset:
    return from_arrays(_np_data.load_fashion_mnist(root))


def load_digits() -> Dataset:
    """sklearn's 1,797 8×8 digits (0..16 → [0, 1]) as packaged in bitcycle.data; its fixed 80/20 split."""
    return from_arrays(_np_data.load_digits())


def load_cifar10(root: str | Path | None) -> Dataset:
    return from_arrays(_np_data.load_cifar10(root))


def load_dataset(name: str, data_dir: str | Path | None = None, train_limit: int | None = None,
                 test_limit: int | None = None, augment: bool = True) -> Dataset:
    """Load ``name`` (fashion-mnist | digits | cifar10); ``*_limit`` keep the first N samples."""
    return limit_dataset(from_arrays(_np_data.load(name, data_dir)), train_limit, test_limit, augment)


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
