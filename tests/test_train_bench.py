"""bench train's target checks and table, on synthetic rows (the benchmark itself runs for an hour)."""

from bitcycle.bench.train import _run_name, check_targets, markdown_table


def _row(model, spec, acc, eng, fp32):
    return {"run": _run_name(model, spec), "model": model, "grad_bits": spec, "epochs": 1, "train_samples": 60000,
            "test_accuracy": acc,
            "mean_grad_bits": 5.0, "train_bops": 10, "saving_vs_fp32": fp32, "saving_vs_fixed8": 0.3,
            "engine_backward_saving_vs_fixed8": eng, "wall_time_s": 1.0, "cpu_time_s": 2.0}


def test_targets():
    rows = [_row("lfc", "fixed:8", 0.880, 0.0, 0.98), _row("lfc", "cosine:2-8x8", 0.875, 0.37, 0.99),
            _row("cnv", "fixed:8", 0.90, 0.0, 0.98), _row("cnv", "cosine:2-8x8", 0.88, 0.34, 0.95)]
    got = {(t["model"], t["target"].split()[0] + t["target"].split()[1]): t["met"] for t in check_targets(rows)}
    assert got == {("lfc", "cosineengine"): True, ("lfc", "cosineBOPs"): True, ("lfc", "cosineaccuracy"): True,
                   ("lfc", "testaccuracy"): True, ("cnv", "cosineengine"): False, ("cnv", "cosineBOPs"): False,
                   ("cnv", "cosineaccuracy"): False, ("cnv", "testaccuracy"): True}


def test_table():
    rows = [_row("lfc", "fixed:8", 0.88, 0.0, 0.98)]
    report = {"train_samples": 60000, "test_samples": 10000, "batch_size": 256, "lr": 0.02, "seed": 0, "threads": 2,
              "runs": rows, "targets": check_targets(rows), "wall_time_s": 12.0, "cpu_time_s": 20.0}
    md = markdown_table(report)
    assert "| lfc | fixed:8 | 1 | 60000 | 88.00% |" in md and "12 s wall" in md
    assert _run_name("lfc", "cosine:2-8x8") == "lfc-cosine2_8x8"


def test_bench_runs_in_worker_processes(tmp_path):
    """The real benchmark, tiny: two runs on two spawned workers, files written, rows in SPEC order."""
    import json

    from bitcycle.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "train", "--models", "lfc", "--specs", "fixed:8,cosine:2-8x2", "--train-limit", "512",
                 "--test-limit", "256", "--batch-size", "128", "--epochs-mlp", "1", "--jobs", "2", "--cyclebnn", "", "--out", str(out)]) == 0
    report = json.loads((out / "train.json").read_text())
    assert report["complete"] and report["jobs"] == 2 and report["grad_scale"] == "row"
    assert set(report["provenance"]) >= {"machine", "cpu", "commit", "date"}
    assert [r["grad_bits"] for r in report["runs"]] == ["fixed:8", "cosine:2-8x2"]
    assert [len(r["bits_per_step"]) for r in report["runs"]] == [4, 4]
    from bitcycle.schedule import parse_grad_bits

    assert report["runs"][1]["bits_per_step"] == [parse_grad_bits("cosine:2-8x2").schedule(4).bits(t) for t in range(4)]
    md = (out / "train.md").read_text()
    assert "| lfc | fixed:8 | 1 | 512 |" in md and "| lfc | cosine:2-8x2 | 1 | 512 |" in md
    assert (out / "train.png").stat().st_size > 0
    for r in report["runs"]:
        assert (out / "train" / r["run"] / "metrics.json").is_file()


def test_bench_interrupt_then_resume(tmp_path):
    """Ctrl-C to the benchmark: every run stops at a step with a checkpoint; --resume finishes them."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "bitcycle.cli", "bench", "train", "--models", "lfc", "--specs", "fixed:8,cosine:2-8x2",
           "--train-limit", "512", "--test-limit", "128", "--batch-size", "128", "--epochs-mlp", "12", "--jobs", "2",
           "--cyclebnn", "", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "sw")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = [out / "train" / name for name in ("lfc-fixed8", "lfc-cosine2_8x2")]
    deadline = time.monotonic() + 600  # no time is measured: this only bounds a hung test
    while not all((r / "checkpoint.pt").exists() for r in runs):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # to the parent only: it passes the stop on to its workers
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "interrupted" in last and "--resume" in last, err
    assert not (out / "train.md").exists()
    import torch

    stopped = [torch.load(r / "checkpoint.pt", weights_only=False)["step"] for r in runs]
    assert all(0 < s < 48 for s in stopped), stopped  # both stopped part-way, neither ran to the end
    proc = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "train.json").read_text())
    assert report["complete"] and report["resumed"]
    assert [len(r["bits_per_step"]) for r in report["runs"]] == [48, 48]
    assert all(r["resumed"] for r in report["runs"])
    assert "resumed benchmark" in (out / "train.md").read_text()


def test_grad_error_bench(tmp_path):
    """bench grad-error on a tiny trained MLP: more bits, less error; 31 bits is the float gradient."""
    import json

    from bitcycle.cli import main

    run = tmp_path / "run"
    assert main(["train", "--model", "tfc", "--set", "width=32", "--dataset", "fashion-mnist", "--train-limit", "512",
                 "--test-limit", "64", "--epochs", "1", "--grad-bits", "fixed:8", "--out", str(run), "--quiet",
                 "--threads", "1"]) == 0
    out = tmp_path / "ge"
    assert main(["bench", "grad-error", "--checkpoint", str(run), "--settings", "2/16/1,2/0/1,8/16/1,31/16/1",
                 "--batch-size", "64", "--threads", "1", "--out", str(out)]) == 0
    rows = json.loads((out / "grad_error.json").read_text())["rows"]
    assert [r["bits"] for r in rows] == [32, 2, 2, 8, 31]
    err = [r["relative_error"] for r in rows]
    assert len(err[0]) == 4  # tfc: 4 binary layers
    assert all(e8 < e2 for e8, e2 in zip(err[3], err[1]))
    assert max(err[4]) < 1e-5 and min(rows[4]["cosine"]) > 0.99999
    assert "| 2 bits, block 16, dW quantised |" in (out / "grad_error.md").read_text()


def test_cyclebnn_schedule_is_cyclebnn_formula():
    """bitcycle.schedule's cosine vs CycleBNN's own line, np.rint(min + ½(max−min)(1+cos(π·(t mod T)/T + π))):
    1+cos(x+π) = 1−cos(x), so both rise from min; they round ties differently (half up vs half to even),
    which never shows for CycleBNN's 2-6 and CPT's 3-8 but does for an odd span with an even floor."""
    import numpy as np

    from bitcycle.schedule import CyclicSchedule

    def cyclebnn(lo, hi, t, period):
        return int(np.rint(lo + 0.5 * (hi - lo) * (1 + np.cos(np.pi * ((t % period) / period) + np.pi))))

    for lo, hi in ((2, 6), (3, 8)):
        for period in range(1, 160):
            s = CyclicSchedule(lo, hi, 2, 2 * period)
            assert [s.bits(t) for t in range(2 * period)] == [cyclebnn(lo, hi, t, period) for t in range(2 * period)]
    assert CyclicSchedule(2, 7, 1, 2).bits(1) == 5 and cyclebnn(2, 7, 1, 2) == 4  # 4.5: half up vs half to even


def test_cyclebnn_cost_line_by_hand():
    from fractions import Fraction

    from bitcycle.bench.train_rows import cyclebnn_run_cost, cyclebnn_step_cost

    assert cyclebnn_step_cost(4, 8) == Fraction(4 * 4 + 2 * 4 * 8, 3 * 1024)  # (fw + eb + gc)/3, gc = eb
    assert cyclebnn_step_cost(32, 32) == 1  # FP32 training costs itself
    assert cyclebnn_run_cost([2, 3, 5, 1, 1, 1], [8] * 6) == Fraction(36 + 57 + 105 + 3 * 17, 6 * 3072)


def test_row_specs():
    import pytest

    from bitcycle.bench.train_rows import cyclebnn_specs, parse_row_spec, run_name
    from bitcycle.errors import BitCycleError

    row = parse_row_spec("FWD:cosine:2-6x4+fixed:8")
    assert (row.forward, row.grad, str(row)) == ("cosine:2-6x4", "fixed:8", "fwd:cosine:2-6x4+fixed:8")
    assert parse_row_spec("cosine:2-8x8").forward is None
    assert [str(r) for r in cyclebnn_specs("2-6, 3-8", 4)] == ["fwd:cosine:2-6x4+fixed:8", "fwd:cosine:3-8x4+fixed:8"]
    assert run_name("lfc", "fwd:cosine:2-6x4+fixed:8") == "lfc-fwd_cosine2_6x4-fixed8"
    assert run_name("cnv", "fixed:8") == "cnv-fixed8"  # bench grad-error's default checkpoint directory
    for bad in ("fwd:cosine:2-6x4", "fwd:fp32+fixed:8", "fwd:cosine:2-20x4+fixed:8"):
        with pytest.raises(BitCycleError, match="bench train"):
            parse_row_spec(bad)
    with pytest.raises(BitCycleError, match="--cyclebnn"):
        cyclebnn_specs("2to6", 4)


def test_bench_cyclebnn_row_beside_gradient_cycling(tmp_path):
    """One CycleBNN row and one gradient-cycling row through bench train's run, tiny: both cost columns."""
    import json
    from fractions import Fraction

    from bitcycle.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "train", "--models", "lfc", "--specs", "cosine:2-8x1", "--cyclebnn", "2-6", "--cyclebnn-cycles",
                 "1", "--train-limit", "300", "--test-limit", "200", "--batch-size", "50", "--epochs-mlp", "1",
                 "--jobs", "1", "--out", str(out)]) == 0
    report = json.loads((out / "train.json").read_text())
    grad, fwd = report["runs"]
    assert (grad["spec"], fwd["spec"]) == ("cosine:2-8x1", "fwd:cosine:2-6x1+fixed:8")
    assert fwd["run"] == "lfc-fwd_cosine2_6x1-fixed8" and report["forward_fraction"] == 0.5
    # 6 steps; the forward cycles over the first half (3 steps, one cycle), binary afterwards
    assert fwd["forward_bits_per_step"] == [2, 3, 5, 1, 1, 1] and fwd["bits_per_step"] == [8] * 6
    assert grad["forward_bits_per_step"] == [1] * 6 and grad["bits_per_step"] == [2, 2, 3, 5, 6, 8]
    # CycleBNN's line by hand: b·b + 2·b·g over 3·32² per step, mean over the 6 steps
    assert fwd["cyclebnn_cost_ratio"] == float(Fraction(4 + 32 + 9 + 48 + 25 + 80 + 3 * 17, 6 * 3072))
    assert fwd["cyclebnn_cost_ratio_fraction"] == "83/6144"
    assert grad["cyclebnn_cost_ratio"] == float(Fraction(sum(1 + 2 * g for g in [2, 2, 3, 5, 6, 8]), 6 * 3072))
    # BitCycle's accounting: for a binary-forward row the common reference is the trainer's own fixed:8
    assert grad["bops_saving_vs_w1a1_fixed8"] == grad["saving_vs_fixed8"]
    assert grad["engine_backward_saving_vs_w1a1_fixed8"] == grad["engine_backward_saving_vs_fixed8"]
    assert fwd["saving_vs_fixed8"] == 0.0 and fwd["bops_saving_vs_w1a1_fixed8"] < 0  # multi-bit W/A cost more BOPs
    assert fwd["engine_planes"] > fwd["engine_planes_w1a1_fixed8"] > grad["engine_planes"]
    md = (out / "train.md").read_text()
    assert "| lfc | fwd:cosine:2-6x1+fixed:8 | 1 | 300 |" in md and "| lfc | cosine:2-8x1 | 1 | 300 |" in md
    assert "CycleBNN cr vs FP32" in md and "engine planes (fwd+bwd) vs W1A1 fixed:8" in md
    assert "cheapest on BitCycle's engine (fwd+bwd bit-planes): cosine:2-8x1" in md
