"""`bitcycle compile --params`: weights trained through the driver (`bitcycle run`, as on the board) become
the inference dataflow's weights, checked like any compile; the compiled driver.json + params.npz load back
into the driver with the same predictions; mismatched params get one line and exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_run import one_line_exit_2, run_cli

pytestmark = pytest.mark.xdist_group("compile_params")


@pytest.fixture(scope="module")
def board_run(tmp_path_factory):
    """A model trained through the driver on emu (what a board run writes)."""
    d = tmp_path_factory.mktemp("board")
    done = run_cli("run", "--backend", "emu", "--hidden", "32,32", "--dataset", "digits", "--steps", "40",
                "--batch-size", "32", "--out", str(d / "run"), "--quiet", cwd=d)
    assert done.returncode == 0, done.stderr[-2000:]
    return d / "run"


def test_board_params_become_the_dataflow_weights(board_run, tmp_path):
    from bitcycle.driver import Accelerator
    from bitcycle.driver.data import load

    out = tmp_path / "c"
    done = run_cli("compile", "--driver-json", str(board_run / "driver.json"), "--check-images", "60", "--out", str(out),
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bit-exact vs torch on 60 digits images" in done.stdout
    assert json.loads((out / "compile.json").read_text())["stages"]["engine"]["checked"] == 60
    # the engine's ±1 weights are the signs of the board's latent weights (FINN negates a row where γ < 0)
    params = np.load(board_run / "params.npz")
    engine = [l for l in json.loads((out / "dataflow.json").read_text())["layers"] if l["op_type"].startswith("BitSerial")]
    assert len(engine) == 3
    for i, layer in enumerate(engine):
        w = np.load(out / layer["weights"])
        want = np.where(params[f"fc{i}.weight"] >= 0, 1, -1)
        if i < 2:
            want = want * np.where(params[f"fc{i}.bn_gamma"] < 0, -1, 1)[:, None]
        np.testing.assert_array_equal(w, want, err_msg=f"layer {i}")
    # the compiled model, loaded back into the driver (pixel codes 0..16), predicts as the board's
    _, _, xt, _, _ = load("digits")
    before = Accelerator("emu", driver_json=board_run / "driver.json").predict(xt)
    after = Accelerator("emu", driver_json=out / "driver.json").predict(xt * 16.0)
    assert (before == after).mean() >= 0.99, (before == after).mean()  # float32 params: a near-tie may flip


def test_params_onto_a_zoo_structure(board_run, tmp_path):
    done = run_cli("compile", "--model", "tfc", "--set", "in_features=64", "--set", "width=32", "--set", "depth=2",
                "--params", str(board_run), "--check-images", "30", "--out", str(tmp_path / "c"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bitcycle bitstream --model tfc --params" in done.stdout


def test_mismatched_params_one_line(board_run, tmp_path):
    params = dict(np.load(board_run / "params.npz"))
    one_line_exit_2(run_cli("compile", "--model", "tfc", "--set", "in_features=64", "--set", "width=64", "--set", "depth=2",
                          "--params", str(board_run / "params.npz"), cwd=tmp_path),
                     "fc0.weight has shape [32, 64]", "[64, 64] [out, in]")
    one_line_exit_2(run_cli("compile", "--model", "sfc", "--set", "in_features=64", "--params",
                          str(board_run / "params.npz"), cwd=tmp_path), "the model has 4 layers (missing fc3.weight)")
    short = {k: v for k, v in params.items() if not k.startswith("fc2.")}
    np.savez(tmp_path / "short.npz", **short)
    one_line_exit_2(run_cli("compile", "--driver-json", str(board_run / "driver.json"), "--params",
                          str(tmp_path / "short.npz"), cwd=tmp_path), "missing fc2.weight")
    bn = dict(params)
    bn["fc1.bn_gamma"] = bn["fc1.bn_gamma"][:5]
    np.savez(tmp_path / "bn.npz", **bn)
    one_line_exit_2(run_cli("compile", "--driver-json", str(board_run / "driver.json"), "--params",
                          str(tmp_path / "bn.npz"), cwd=tmp_path), "fc1.bn_gamma has 5 values")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    one_line_exit_2(run_cli("compile", "--driver-json", str(board_run / "driver.json"), "--params",
                          str(tmp_path / "bad.npz"), cwd=tmp_path), "is not a params .npz")
    spec = json.loads((board_run / "driver.json").read_text())
    spec["params"] = None
    (tmp_path / "noparams.json").write_text(json.dumps(spec))
    one_line_exit_2(run_cli("compile", "--driver-json", str(tmp_path / "noparams.json"), cwd=tmp_path),
                     "names no params file")
    one_line_exit_2(run_cli("compile", "--onnx", str(tmp_path / "x.onnx"), "--params", str(board_run), cwd=tmp_path),
                     "brings its own weights")
