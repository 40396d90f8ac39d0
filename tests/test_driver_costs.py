"""What a training step costs through the driver: the per-step counters (``Accelerator.per_step``,
``metrics.json``'s ``per_step``), weight residency and the number of engine jobs per product."""

from __future__ import annotations

import json


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
