"""Data sets: the IDX reader, Fashion-MNIST / CIFAR-10 loaders on generated files, digits, batching."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from bitcycle.errors import BitCycleError
from bitcycle.train.data import FASHION_MNIST_DIR, _crop_flip, batches, load_dataset, read_idx, steps_per_epoch


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def _write_fmnist(root, n_train=12, n_test=5, gz=True):
    rng = np.random.RandomState(0)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
        y = rng.randint(0, 10, size=n).astype(np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = root / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}"
            name.write_bytes(gzip.compress(_idx(arr)) if gz else _idx(arr))
        data[prefix] = (x, y)
    return data


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_generated(tmp_path, gz):
    data = _write_fmnist(tmp_path, gz=gz)
    ds = load_dataset("fashion-mnist", tmp_path)
    assert ds.train_x.shape == (12, 1, 28, 28) and ds.test_x.shape == (5, 1, 28, 28)
    assert torch.equal((ds.train_x[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(data["train"][0]))
    assert torch.equal(ds.test_y, torch.from_numpy(data["t10k"][1].astype(np.int64)))
    assert ds.augment == "none" and ds.sample_shape == (1, 28, 28)


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(BitCycleError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(_idx(np.zeros((3, 4), np.uint8))[:-2])
    with pytest.raises(BitCycleError, match="holds 10 bytes"):
        read_idx(short)


def test_missing_fashion_mnist(tmp_path):
    with pytest.raises(BitCycleError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path)


def test_real_fashion_mnist():
    # make setup installs Debian's dataset-fashion-mnist; without it this fails rather than skips
    assert FASHION_MNIST_DIR.is_dir(), "Debian dataset-fashion-mnist not installed: apt-get install dataset-fashion-mnist"
    ds = load_dataset("fashion-mnist", test_limit=100)
    assert ds.train_x.shape == (60000, 1, 28, 28) and len(ds.test_y) == 100
    assert float(ds.train_x.min()) == 0.0 and float(ds.train_x.max()) == 1.0
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10


def test_digits():
    ds = load_dataset("digits")
    assert ds.train_x.shape == (1438, 1, 8, 8) and ds.test_x.shape == (359, 1, 8, 8)
    assert float(ds.train_x.max()) == 1.0 and float(ds.train_x.min()) == 0.0
    assert len(set(ds.train_y.tolist())) == 10


def _write_cifar(root, n=4):
    rng = np.random.RandomState(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.randint(0, 256, size=(n, 3072)).astype(np.uint8), b"labels": list(rng.randint(0, 10, n))}
        with open(root / name, "wb") as f:
            pickle.dump(d, f)


def test_cifar10_generated(tmp_path):
    _write_cifar(tmp_path)
    with open(tmp_path / "data_batch_2", "rb") as f:
        b2 = pickle.load(f, encoding="bytes")
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    # row layout: 1024 red, 1024 green, 1024 blue, row-major 32×32
    pixel = b2[b"data"][1]
    assert round(float(ds.train_x[5, 1, 2, 3]) * 255) == pixel[1024 + 2 * 32 + 3]
    assert int(ds.train_y[5]) == b2[b"labels"][1]
    assert ds.augment == "crop-flip"
    assert load_dataset("cifar10", tmp_path, augment=False).augment == "none"


def test_cifar10_errors(tmp_path):
    with pytest.raises(BitCycleError, match="--data-dir"):
        load_dataset("cifar10")
    with pytest.raises(BitCycleError, match="data_batch_1"):
        load_dataset("cifar10", tmp_path)
    _write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(BitCycleError, match="not a CIFAR-10 pickle"):
        load_dataset("cifar10", tmp_path)


def test_unknown_dataset_and_limits():
    with pytest.raises(BitCycleError, match="unknown data set"):
        load_dataset("mnist3d")
    ds = load_dataset("digits", train_limit=100, test_limit=10)
    assert len(ds.train_y) == 100 and len(ds.test_y) == 10
    with pytest.raises(BitCycleError):
        load_dataset("digits", train_limit=0)


def test_batches_seeded_and_sharded():
    x = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1, 1)
    y = torch.arange(50)
    a = [b[1].tolist() for b in batches(x, y, 8, epoch=3, seed=1)]
    assert a == [b[1].tolist() for b in batches(x, y, 8, epoch=3, seed=1)]
    assert a != [b[1].tolist() for b in batches(x, y, 8, epoch=4, seed=1)]
    assert len(a) == steps_per_epoch(50, 8) == 6 and len(set(sum(a, []))) == 48
    r0 = [b[1].tolist() for b in batches(x, y, 8, 3, 1, rank=0, world=2)]
    r1 = [b[1].tolist() for b in batches(x, y, 8, 3, 1, rank=1, world=2)]
    for full, p, q in zip(a, r0, r1):
        assert sorted(p + q) == sorted(full) and len(p) == len(q) == 4


def test_crop_flip_is_a_crop_of_the_padded_image():
    x = torch.rand(6, 2, 8, 8)
    out = _crop_flip(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(6):
        found = any(torch.equal(out[i], c) for dy in range(9) for dx in range(9)
                    for c in (padded[i, :, dy:dy + 8, dx:dx + 8], padded[i, :, dy:dy + 8, dx:dx + 8].flip(-1)))
        assert found, i


def test_limit_dataset_is_a_copy():
    from bitcycle.train.data import limit_dataset

    ds = load_dataset("digits")
    small = limit_dataset(ds, 50, 20, augment=False)
    assert len(small.train_y) == 50 and len(small.test_y) == 20 and small.augment == "none"
    assert len(ds.train_y) == 1438 and len(ds.test_y) == 359
    assert torch.equal(small.train_x, ds.train_x[:50])
