"""Write sw/bitcycle/data/digits.npz: sklearn's 1,797 8×8 digits, packaged so a board needs numpy only.

Run once on the development machine (``.venv/bin/python tools/make_digits_npz.py``); the file is
committed. It holds

* ``images``  uint8 [1797, 8, 8], pixel codes 0..16, exactly ``sklearn.datasets.load_digits().images``;
* ``target``  uint8 [1797], the labels;
* ``test_index`` uint16 [359], the test split: the first 20 % of ``torch.randperm(1797)`` with a
  generator seeded 0 — the split ``bitcycle train`` has always used, so models trained before the
  data moved here are scored on the same images. The rest, in that permutation's order, is the
  training split (``train_index``, uint16 [1438]).

tests/test_data_numpy.py checks the file against sklearn and torch whenever they are installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parents[1] / "sw" / "bitcycle" / "data" / "digits.npz"


def main() -> None:
    d = load_digits()
    perm = torch.randperm(len(d.target), generator=torch.Generator().manual_seed(0)).numpy()
    n_test = int(round(len(perm) * 0.2))
    images = d.images.astype(np.uint8)
    assert np.array_equal(images, d.images) and images.max() == 16
    np.savez_compressed(OUT, images=images, target=d.target.astype(np.uint8),
                        test_index=perm[:n_test].astype(np.uint16), train_index=perm[n_test:].astype(np.uint16))
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
