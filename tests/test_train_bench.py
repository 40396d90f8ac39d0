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
                 "--test-limit", "256", "--batch-size", "128", "--epochs-mlp", "1", "--jobs", "2", "--out", str(out)]) == 0
    report = json.loads((out / "train.json").read_text())
    assert report["complete"] and report["jobs"] == 2 and report["grad_scale"] == "row"
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
           "--out", str(out)]
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
