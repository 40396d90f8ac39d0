"""bitcycle.data: the numpy-only loaders below train and driver, the packaged digits, the 8-bit grid."""

import gzip
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from bitcycle import data as D
from bitcycle.errors import BitCycleError


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def test_imports_no_torch_sklearn_or_finn():
    code = ("import sys, bitcycle.data, bitcycle.driver.data; bitcycle.data.load('digits'); "
            "bad = [m for m in ('torch', 'sklearn', 'scipy', 'finn', 'brevitas', 'qonnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_packaged_digits_are_sklearns_with_trains_split():
    """digits.npz holds exactly sklearn's digits and the split bitcycle train always used (torch.randperm, seed 0)."""
    import torch
    from sklearn.datasets import load_digits

    sk = load_digits()
    a = D.load_digits()
    perm = torch.randperm(1797, generator=torch.Generator().manual_seed(0)).numpy()
    te, tr = perm[:359], perm[359:]
    x = sk.images.astype(np.float32) / np.float32(16.0)
    assert a.train_x.dtype == np.float32 and a.train_x.shape == (1438, 1, 8, 8) and a.test_x.shape == (359, 1, 8, 8)
    assert np.array_equal(a.train_x[:, 0], x[tr]) and np.array_equal(a.test_x[:, 0], x[te])
    assert np.array_equal(a.train_y, sk.target[tr]) and np.array_equal(a.test_y, sk.target[te])
    assert a.train_y.dtype == np.int64 and D.DIGITS_NPZ.stat().st_size < 120_000


def test_driver_and_train_see_the_same_samples():
    from bitcycle.driver.data import load
    from bitcycle.train.data import load_dataset

    x, y, xt, yt, source = load("digits")
    ds = load_dataset("digits")
    assert source == "bitcycle.data digits.npz" and x.dtype == np.float64
    assert np.array_equal(x, ds.train_x.reshape(1438, -1).numpy()) and np.array_equal(yt, ds.test_y.numpy())


def test_bad_digits_file(tmp_path):
    bad = tmp_path / "digits.npz"
    bad.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(BitCycleError, match="cannot read the digits data"):
        D.load_digits(bad)
    np.savez(bad, images=np.zeros((10, 8, 8), np.uint8), target=np.zeros(10, np.uint8),
             train_index=np.arange(8), test_index=np.arange(8, 10))
    with pytest.raises(BitCycleError, match="expected 1797 8×8 digits"):
        D.load_digits(bad)


def test_fashion_mnist_idx_numpy(tmp_path):
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, size=(7, 28, 28)).astype(np.uint8)
    y = rng.randint(0, 10, size=7).astype(np.uint8)
    for prefix in ("train", "t10k"):
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(x)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(y))
    a = D.load("fashion-mnist", tmp_path)
    assert a.train_x.shape == (7, 1, 28, 28) and a.train_x.dtype == np.float32
    assert np.array_equal(np.round(a.test_x[:, 0] * 255).astype(np.uint8), x)
    assert a.test_y.tolist() == y.tolist() and a.test_y.dtype == np.int64


def test_idx_errors(tmp_path):
    cut = tmp_path / "cut"
    cut.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(BitCycleError, match="header cut short"):
        D.read_idx(cut)
    with pytest.raises(BitCycleError, match="cannot read IDX file"):
        D.read_idx(tmp_path / "absent.gz")


def test_cifar_pickles_numpy(tmp_path):
    rng = np.random.RandomState(2)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {b"data": rng.randint(0, 256, size=(3, 3072)).astype(np.uint8),
                         b"labels": list(rng.randint(0, 10, 3))}
        (tmp_path / name).write_bytes(pickle.dumps(batches[name]))
    a = D.load("cifar10", tmp_path)
    assert a.train_x.shape == (15, 3, 32, 32) and a.augment == "crop-flip"
    # data_batch_3, row 2, green channel (1024..2047), pixel (5, 7)
    assert round(float(a.train_x[8, 1, 5, 7]) * 255) == batches["data_batch_3"][b"data"][2][1024 + 5 * 32 + 7]
    (tmp_path / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(BitCycleError, match="not a CIFAR-10 python batch"):
        D.load("cifar10", tmp_path)


def test_input_grid_exact():
    # m = 127: 2x − 1 lands on multiples of 1/127; the endpoints and the grid itself are fixed points
    grid = ((np.arange(-127, 128) / 127.0 + 1.0) / 2.0).astype(np.float32)
    assert np.array_equal(D.to_input_grid(grid), grid)
    assert D.to_input_grid(np.array([0.0, 1.0]))[[0, 1]].tolist() == [0.0, 1.0]
    # a digits code 4/16: 2x − 1 = −0.5 → −63.5 steps, rounded half-to-even to −64 → (−64/127 + 1)/2
    assert D.to_input_grid(np.array([0.25]))[0] == np.float32((-64 / 127 + 1) / 2)
    codes = np.round((D.to_input_grid(np.random.default_rng(0).random(1000)).astype(np.float64) * 2 - 1) * 127)
    assert np.abs(codes).max() <= 127
    with pytest.raises(BitCycleError, match="2..16"):
        D.to_input_grid(grid, bits=1)


def test_unknown_dataset():
    with pytest.raises(BitCycleError, match="unknown data set 'mnist3d'; choose one of fashion-mnist, digits, cifar10"):
        D.load("mnist3d")
