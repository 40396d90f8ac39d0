"""What a training step costs through the driver: the per-step counters (``Accelerator.per_step``,
``metrics.json``'s ``per_step``), weight residency and the number of engine jobs per product."""

from __future__ import annotations

import json

import numpy as np
import pytest


from bitcycle.driver import Accelerator, spec_for_model
from bitcycle.driver.data import load as load_data
from bitcycle.hwif.driver_json import EngineSpec


def digits(n: int = 64):
    x, y, *_ = load_data("digits")
    return x[:n], y[:n]


def acc_for(hidden=(20, 12), engine=None, **kw) -> Accelerator:
    spec = spec_for_model("mlp", hidden=list(hidden), engine=engine or EngineSpec())
    return Accelerator("emu", driver_json=spec, seed=0, **kw)


def test_per_step_counts_training_steps_only():
    x, y = digits(32)
    acc = acc_for()
    acc.train_step(x, y)
    acc.counters(reset=True)
    for _ in range(2):
        acc.train_step(x, y)
    c = acc.counters()
    acc.evaluate(x, y)  # inference jobs: counted by counters(), not by per_step()
    ps = acc.per_step()
    jobs = sum(c["jobs"].values())
    compute = jobs - c["jobs"]["LOAD_WEIGHTS"]
    assert ps["steps"] == 2
    assert ps["engine_jobs"] == jobs / 2
    # one input packet per job, one output packet per compute job; a cache sync for each buffer
    assert ps["dma_transfers"] == (jobs + compute) / 2 == ps["cache_syncs"]
    assert ps["register_accesses"] == (c["reg_writes"] + c["reg_reads"]) / 2
    assert ps["bytes_sent"] == c["bytes_sent"] / 2 and ps["bytes_received"] == c["bytes_received"] / 2
    assert sum(acc.counters()["jobs"].values()) > jobs  # evaluate() did run jobs


def test_run_cli_metrics_per_step(tmp_path):
    from bitcycle.cli import main

    out = tmp_path / "run"
    assert main(["run", "--steps", "3", "--hidden", "16,16", "--batch-size", "16", "--grad-bits", "fixed:4",
                 "--out", str(out), "--quiet", "--test-limit", "20", "--eval-every", "1"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    ps = m["per_step"]
    assert set(ps) == {"engine_jobs", "dma_transfers", "register_accesses", "cache_syncs", "bytes_sent", "bytes_received"}
    # evaluation ran jobs too (--eval-every 1): the per-step means leave them out
    assert 0 < ps["engine_jobs"] * 3 < sum(m["jobs"].values())
    assert 0 < ps["bytes_received"] * 3 < m["bytes_received"]


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_pow2_quantiser_numpy_equals_torch(bits):
    """Block-floating-point scales: the driver's numpy quantiser gives torch's codes and scales bit
    for bit (same key), every scale is a power of two within POW2_SPAN of its row's largest."""
    import torch

    from bitcycle.driver.hostmath import POW2_SPAN, quantize_grad
    from bitcycle.quant.grad import quantise_grad

    torch.set_num_threads(1)
    rng = np.random.default_rng(bits)
    g = rng.standard_normal((40, 64)) * np.exp(rng.uniform(-12, 2, (40, 1)))
    g[:, 16:32] *= 1e-4  # a block far below its row's largest: its exponent is raised to the span
    g[3] = 0.0  # an all-zero row
    g[5, :16] = 0.0  # an all-zero block
    g[7, 0] = 2.0 ** -3 * ((1 << max(bits - 1, 1)) - 1 if bits > 1 else 1)  # amax/qmax exactly a power of two
    for keep, axis in [(0, 1), (1, 0)]:
        key = int(rng.integers(0, 1 << 31))
        q_np, s_np = quantize_grad(g, bits, key, keep_axis=keep, block_axis=axis, block=16, pow2=True)
        q_t, s_t = quantise_grad(torch.from_numpy(g).float(), bits, key, keep_dim=keep, block_dim=axis, block=16, pow2=True)
        np.testing.assert_array_equal(q_np, q_t.numpy())
        s_np = np.broadcast_to(s_np, g.shape)
        np.testing.assert_array_equal(s_np, np.broadcast_to(s_t.numpy(), g.shape))
        nz = s_np[s_np > 0]
        assert np.all(np.exp2(np.round(np.log2(nz))) == nz)
        qmax = 1 if bits == 1 else (1 << (bits - 1)) - 1
        assert np.all(np.abs(q_np) <= qmax) and np.all(np.abs(g.astype(np.float32)) <= s_np * qmax)
        ratio = s_np.max(axis=axis, keepdims=True) / np.where(s_np > 0, s_np, np.inf)
        assert ratio.max() <= 2 ** POW2_SPAN  # blocks of one row differ by at most POW2_SPAN shifts
        if keep == 0:
            assert np.all(s_np[3] == 0) and np.all(s_np[5, :16] == 0) and np.all(s_np[5, 16:] > 0)


def sfc(**kw) -> Accelerator:
    return Accelerator("emu", driver_json=spec_for_model("sfc", "digits", grad_bits=(2, 8)), seed=0, **kw)


def test_sfc_step_jobs_with_resident_weights():
    """SFC 64-256×3-10, batch 64, pow2 scales: per layer and product one job (fc0's 8-bit input
    two, its bit-planes stacked), fc0 and fc3 streamed, fc1/fc2 loaded only when not resident."""
    x, y = digits(64)
    acc = sfc(grad_scale="pow2", lr=0.0)  # lr 0: no sign flips, so nothing needs writing back
    acc.set_bits(4)
    acc.train_step(x, y)
    acc.counters(reset=True)
    m = acc.train_step(x, y)
    jobs = acc.counters()["jobs"]
    assert m["weight_flips"] == 0
    # forward: fc1, fc2 in FORWARD (fc0, fc3 streamed); backward-data: fc2 resident, fc1 reloaded, fc3 streamed
    assert jobs == {"FORWARD": 2, "BACKWARD_DATA": 2, "BACKWARD_WEIGHT": 2 + 1 + 5, "LOAD_WEIGHTS": 2, "LOAD_THRESHOLDS": 0}
    ps = acc.per_step()
    assert ps["engine_jobs"] == 14 and ps["dma_transfers"] == 2 * 12 + 2


def test_pow2_folded_backward_data_equals_per_block_jobs():
    """The folded product (one job) equals the per-block products summed with their scales, exactly."""
    from bitcycle.driver.hostmath import quantize_grad

    rng = np.random.default_rng(3)
    a, b = sfc(grad_scale="pow2"), sfc(grad_scale="row")  # row: float block scales → one job per 16 rows
    dz = rng.standard_normal((256, 64)) * np.exp(rng.uniform(-3, 0, (256, 1)))
    q, s = quantize_grad(dz, 4, 7, keep_axis=1, block_axis=0, block=16, pow2=True)
    a.counters(reset=True)
    folded = a.backward_data(1, q, 4, row_scales=s)
    assert a.counters()["jobs"]["BACKWARD_DATA"] == 1
    b.counters(reset=True)
    blocked = b._backward_data(1, q, 4, np.broadcast_to(s, q.shape))
    assert b.counters()["jobs"]["BACKWARD_DATA"] == 16
    np.testing.assert_array_equal(folded, blocked)
    w = a.sign_w[1].astype(np.float64)
    np.testing.assert_array_equal(folded, w.T @ (q * s))  # exact: small integers times powers of two
