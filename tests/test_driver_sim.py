"""The driver on the ``sim`` backend (Verilated engine in a child process) against ``emu``.

Same driver code, same seed: after several training steps the weights must be bit-identical,
every product must equal the golden model, and bad input must leave the engine usable.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from bitcycle.driver import Accelerator, spec_for_model
from bitcycle.driver import protocol as P
from bitcycle.hwif.driver_json import EngineSpec
from bitcycle.errors import BitCycleError
from bitcycle.golden import bitserial_matmul, int_range
from bitcycle.golden import stream as S

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("driver_sim")]

# the default engine build (shared with the notebook's sim run: one Verilator build)
ENGINE = EngineSpec()
SEED = random.SystemRandom().randrange(1 << 30)
print(f"test_driver_sim seed {SEED}")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data / 16.0, d.target


def _train(backend, x, y, steps, seed):
    from bitcycle.schedule import CyclicSchedule

    spec = spec_for_model("mlp", hidden=[16, 16], grad_bits=(2, 8), engine=ENGINE)
    with Accelerator(backend, driver_json=spec, seed=seed, timeout=60) as acc:
        acc.set_schedule(CyclicSchedule(2, 8, 2, steps))
        metrics = [acc.train_step(x[s * 16:(s + 1) * 16], y[s * 16:(s + 1) * 16]) for s in range(steps)]
        return metrics, [w.copy() for w in acc.sign_w], [w.copy() for w in acc.latent], acc.counters()


def test_emu_and_sim_bit_identical_after_training(digits):
    x, y = digits
    steps = 6
    emu = _train("emu", x, y, steps, SEED)
    sim = _train("sim", x, y, steps, SEED)
    assert [m["grad_bits"] for m in sim[0]] == [m["grad_bits"] for m in emu[0]]
    assert [m["loss"] for m in sim[0]] == [m["loss"] for m in emu[0]]
    for a, b in zip(emu[1], sim[1]):
        np.testing.assert_array_equal(a, b)  # sign(W) in the engine
    for a, b in zip(emu[2], sim[2]):
        np.testing.assert_array_equal(a, b)  # latent weights on the host
    assert sum(m["weight_flips"] for m in sim[0]) > 0  # weights really changed and were written back
    ce, cs = emu[3], sim[3]
    assert ce["jobs"] == cs["jobs"] and ce["bytes_sent"] == cs["bytes_sent"] and ce["bytes_received"] == cs["bytes_received"]
    # every mode that ran took RTL cycles (small layers stream W: BACKWARD_WEIGHT jobs, no weight loads)
    assert cs["jobs"]["BACKWARD_WEIGHT"] > 0
    assert all(cs["cycles"][m] > 0 for m, n in cs["jobs"].items() if n)


def test_sim_products_and_bad_input(digits):
    rng = np.random.default_rng(SEED)
    spec = spec_for_model("mlp", hidden=[16, 16], engine=ENGINE)
    with Accelerator("sim", driver_json=spec, seed=SEED, timeout=60) as acc:
        for _ in range(6):
            bits = int(rng.integers(1, 17))
            m, k, n = (int(v) for v in rng.integers(1, 40, 3))
            b = rng.choice([-1, 1], (m, k)).astype(np.int8)
            lo, hi = int_range(bits)
            ints = rng.choice([-1, 1], (k, n)) if bits == 1 else rng.integers(lo, hi + 1, (k, n))
            np.testing.assert_array_equal(acc.matmul(b, ints, bits), bitserial_matmul(b, ints, bits),
                                          err_msg=f"bits={bits} {m}x{k}x{n}")
        # a reduction longer than MAX_CHUNKS·SIMD: the driver splits it into several engine jobs
        b = rng.choice([-1, 1], (6, 64 * 16 + 37)).astype(np.int8)
        ints = rng.integers(-8, 8, (b.shape[1], 3))
        acc.counters(reset=True)
        np.testing.assert_array_equal(acc.matmul(b, ints, 4), bitserial_matmul(b, ints, 4))
        assert acc.counters()["jobs"]["BACKWARD_WEIGHT"] == 2
        w0 = acc.sign_w[0].astype(np.int64)
        x = rng.integers(-128, 128, (64, 5))
        # the engine's error register: illegal bits written straight into the register
        with pytest.raises(BitCycleError, match="bits out of range"):
            acc._job(P.Mode.FORWARD, 0, 16, 64, 5, np.zeros(1, np.uint64), n_out=1)
        # an illegal shape for the engine's memories
        with pytest.raises(BitCycleError, match="bad shape"):
            acc._job(P.Mode.LOAD_WEIGHTS, 1, 4096, 4096, 1, np.zeros(1, np.uint64))
        # a short packet: the engine aborts the job, the driver reports it (no hang)
        acc._make_resident(0, (0, 16, 0, 64))  # layer 0 is [16, 64]
        words = acc._pack(P.Mode.FORWARD, 8, ints=x)
        with pytest.raises(BitCycleError, match="FORWARD"):
            acc._job(P.Mode.FORWARD, 8, 16, 64, 5, words[:-3], n_out=S.output_words(0, acc.geo, 16, 64, 5))
        # bad shapes and bits from the caller never reach the engine
        with pytest.raises(BitCycleError, match="outside the engine's range"):
            acc.forward_layer(0, x, 17)
        with pytest.raises(BitCycleError, match=r"\[64, N\]"):
            acc.forward_layer(0, x[:10])
        # ... and the engine is still usable and exact
        np.testing.assert_array_equal(acc.forward_layer(0, x), w0 @ x)
        np.testing.assert_array_equal(acc.backward_data(0, rng.integers(-7, 8, (16, 5)), 4).shape, (64, 5))


def test_bitcycle_run_emu_and_sim_identical(tmp_path):
    """`bitcycle run` end to end on both backends: same metrics, same final weights (SHA-256 of sign(W))."""
    import json

    from bitcycle.cli import main

    runs = {}
    for backend in ("emu", "sim"):
        out = tmp_path / backend
        rc = main(["run", "--backend", backend, "--steps", "5", "--hidden", "16,16", "--batch-size", "16",
                   "--grad-bits", "cosine:2-8x1", "--test-limit", "48", "--out", str(out), "--quiet", "--timeout", "60"])
        assert rc == 0
        runs[backend] = json.loads((out / "metrics.json").read_text())
    emu, sim = runs["emu"], runs["sim"]
    assert sim["weights_sha256"] == emu["weights_sha256"]
    assert sim["test_accuracy"] == emu["test_accuracy"] and sim["final_loss"] == emu["final_loss"]
    assert sim["jobs"] == emu["jobs"] and sim["bytes_sent"] == emu["bytes_sent"]
    np.testing.assert_array_equal(np.load(tmp_path / "emu" / "params.npz")["fc1.weight"],
                                  np.load(tmp_path / "sim" / "params.npz")["fc1.weight"])
