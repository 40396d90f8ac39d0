"""The trainer and `bitcycle train`: output files, resume = uninterrupted, bad input, torchrun DDP."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bitcycle.cli import main
from bitcycle.train.checkpoint import load_trained
from bitcycle.train.data import load_dataset
from bitcycle.train.interrupt import TrainingInterrupted
from bitcycle.train.trainer import TrainConfig, train

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _cfg(**kw):
    base = dict(model="sfc", model_cfg={"width": 24}, dataset="digits", grad_bits="cosine:2-8x2", epochs=3,
                batch_size=64, lr=0.02, seed=3, train_limit=384, test_limit=100)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_gives_identical_weights(tmp_path):
    data = load_dataset("digits", train_limit=384, test_limit=100)
    full = train(_cfg(), tmp_path / "full", progress=False, data=data)
    part = train(_cfg(), tmp_path / "part", progress=False, data=data, stop_after_epochs=1)
    assert part == {"interrupted_after_epoch": 1}
    assert not (tmp_path / "part" / "metrics.json").exists()  # nothing final written by the interrupted run
    resumed = train(_cfg(), tmp_path / "part", resume=True, progress=False, data=data)
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "part" / "model.pt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed["bits_per_step"] == full["bits_per_step"]
    assert resumed["test_accuracy"] == full["test_accuracy"]
    assert resumed["train_bops"] == full["train_bops"]
    # a different seed really changes the weights (the comparison above can fail)
    other = train(_cfg(seed=4, epochs=1), tmp_path / "other", progress=False, data=data)
    c = torch.load(tmp_path / "other" / "model.pt", weights_only=False)["state_dict"]
    assert not torch.equal(a["features.1.weight"], c["features.1.weight"])
    assert other["steps"] == 6


def _signal_at_step(monkeypatch, k, sig=signal.SIGINT, times=1):
    """Deliver ``sig`` (``times`` times) to this process right after step k's optimiser update."""
    import bitcycle.train.trainer as trainer

    real, calls = trainer.clip_latent_weights, []

    def clip_then_signal(model):
        real(model)
        calls.append(1)
        if len(calls) == k:
            for _ in range(times):
                signal.raise_signal(sig)

    monkeypatch.setattr(trainer, "clip_latent_weights", clip_then_signal)


@pytest.mark.parametrize("sig,at", [(signal.SIGINT, 8), (signal.SIGTERM, 6)])
def test_signal_mid_epoch_then_resume_gives_identical_weights(tmp_path, monkeypatch, capsys, sig, at):
    # 6 steps per epoch: step 8 stops inside epoch 2, step 6 at the end of epoch 1
    data = load_dataset("digits", train_limit=384, test_limit=100)
    cfg = _cfg(model_cfg={"width": 24, "dropout": 0.2})  # dropout: its generator must resume mid-epoch too
    full = train(cfg, tmp_path / "full", progress=False, data=data)
    with monkeypatch.context() as m:
        _signal_at_step(m, at, sig)
        with pytest.raises(TrainingInterrupted, match=f"{sig.name} (at step {at} of 18|after epoch 1 of 3).*--resume"):
            train(cfg, tmp_path / "part", progress=False, data=data)
    assert not (tmp_path / "part" / "metrics.json").exists()
    state = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert state["step"] == at and len(state["history"]["steps"]) == at
    assert (state["in_epoch"] or {}).get("steps_done") == (2 if at == 8 else None)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the guard put the handler back
    resumed = train(cfg, tmp_path / "part", resume=True, progress=False, data=data)
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "part" / "model.pt", weights_only=False)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed["test_accuracy"] == full["test_accuracy"]
    assert [e["train_loss"] for e in resumed["epochs_detail"]] == [e["train_loss"] for e in full["epochs_detail"]]


def test_second_ctrl_c_interrupts_at_once(tmp_path, monkeypatch):
    data = load_dataset("digits", train_limit=384, test_limit=100)
    _signal_at_step(monkeypatch, 2, times=2)
    with pytest.raises(KeyboardInterrupt) as err:
        train(_cfg(), tmp_path / "r", progress=False, data=data)
    assert not isinstance(err.value, TrainingInterrupted)
    assert not (tmp_path / "r" / "checkpoint.pt").exists()  # no epoch finished: nothing to resume, nothing half-written
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_cli_interrupt_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    _signal_at_step(monkeypatch, 3)
    argv = ["train", "--model", "sfc", "--set", "width=16", "--dataset", "digits", "--train-limit", "384", "--epochs", "2",
            "--out", str(tmp_path / "c"), "--quiet", "--threads", "1"]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted: SIGINT at step 3 of 12" in err[0] and "--resume" in err[0], err
    monkeypatch.undo()
    assert main(argv + ["--resume"]) == 0
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["steps"] == 12


def test_cli_smoke_outputs(tmp_path, capsys):
    out = tmp_path / "D"
    rc = main(["train", "--model", "sfc", "--dataset", "digits", "--grad-bits", "cosine:2-8x4", "--epochs", "2",
               "--out", str(out), "--quiet", "--threads", "1"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "bits_per_step", "train_bops", "saving_vs_fp32", "saving_vs_fixed8"):
        assert key in m
    steps = 2 * (1438 // 64)
    assert m["steps"] == steps and len(m["bits_per_step"]) == steps
    assert min(m["bits_per_step"]) == 2 and max(m["bits_per_step"]) == 8
    assert m["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert m["saving_vs_fp32"] > 0.96 and 0.3 < m["saving_vs_fixed8"] < 0.45
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,grad_bits") and len(rows) == steps + 1
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load_trained(out)
    data = load_dataset("digits")
    with torch.no_grad():
        acc = (model(data.test_x).argmax(1) == data.test_y).float().mean().item()
    assert acc == pytest.approx(m["test_accuracy"])
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv,words", [
    (["--model", "vgg"], "unknown model"),
    (["--dataset", "mnist3d"], "unknown data set"),
    (["--grad-bits", "cosine:8-2x4"], "b_min=8 > b_max=2"),
    (["--grad-bits", "fixed:40"], "outside 1..32"),
    (["--epochs", "0"], "at least 1 epoch"),
    (["--grad-block", "-4"], "--grad-block -4"),
    (["--set", "nope=1"], "no option nope"),
    (["--model", "cnv"], "no default conv plan for input_size=8"),
    (["--model", "cnv", "--set", "input_size=32", "--set", "channels=[4]", "--set", "fc=[4]"], "is for 1×32² inputs"),
])
def test_cli_bad_input(tmp_path, capsys, argv, words):
    rc = main(["train", "--out", str(tmp_path / "x"), "--quiet", "--train-limit", "128", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_resume_checks(tmp_path, capsys):
    out = str(tmp_path / "r")
    common = ["train", "--dataset", "digits", "--train-limit", "128", "--epochs", "1", "--out", out, "--quiet",
              "--threads", "1"]
    assert main(common + ["--model", "sfc", "--set", "width=16"]) == 0
    assert main(common + ["--model", "sfc", "--set", "width=16"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(common + ["--model", "tfc", "--set", "width=16", "--resume"]) == 2
    assert "from model sfc" in capsys.readouterr().err
    assert main(common + ["--model", "sfc", "--set", "width=16", "--grad-bits", "fixed:4", "--resume"]) == 2
    assert "other options (grad_bits='fp32')" in capsys.readouterr().err
    fresh = [a if a != out else str(tmp_path / "none") for a in common]
    assert main(fresh + ["--model", "sfc", "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "sw")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bitcycle.cli",
           "train", "--model", "sfc", "--set", "width=16", "--dataset", "digits", "--train-limit", "256",
           "--batch-size", "32", "--epochs", "2", "--grad-bits", "cosine:2-8x2", "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["steps"] == 16 and m["samples"] == 16 * 32
    # resume across 2 processes needs the same count; the checkpoint holds one generator state per rank
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["world"] == 2 and len(state["grad_quant"]) == 2


def test_preloaded_data_gets_the_run_limits(tmp_path):
    data = load_dataset("digits")
    m = train(_cfg(epochs=1, train_limit=128, test_limit=50), tmp_path / "l", progress=False, data=data)
    assert m["steps"] == 2 and len(data.train_y) == 1438
