"""The compile CLI: a complete build directory, driver.json accepted by the driver,
`bitcycle bitstream` without Vitis/Vivado → exit 2 with one line, a missing checkpoint → exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sw"), PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "bitcycle.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_missing_checkpoint_exits_2_with_one_line(tmp_path):
    done = _cli("compile", "--checkpoint", str(tmp_path / "nope"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "bitcycle train" in done.stderr
    assert not (tmp_path / "build").exists()


def test_compile_cli_writes_complete_build_dir_and_bitstream_exits_2(tmp_path):
    out = tmp_path / "build" / "tiny"
    args = ("--model", "tfc", "--model-cfg", '{"in_features": 64, "width": 16, "depth": 1}', "--check-images", "100",
            "--out", str(out))
    done = _cli("compile", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    for f in ("qonnx.onnx", "model.onnx", "resources.json", "resources.md", "dataflow.json", "driver.json",
              "compile.json", "bd/bd.tcl", "finn_build.py", "params.npz"):
        assert (out / f).is_file(), f
    assert not list(tmp_path.glob("build/.tiny.tmp-*"))
    summary = json.loads((out / "compile.json").read_text())
    assert summary["images_checked"] == 100 and summary["stages"]["engine"]["checked"] == 100
    from bitcycle.hwif.driver_json import load

    spec = load(out / "driver.json")  # the driver's own validator accepts it
    assert [l.in_bits for l in spec.layers] == [8, 1] and spec.layers[-1].act == "none"
    flow = json.loads((out / "dataflow.json").read_text())
    engine = [l for l in flow["layers"] if l["op_type"] == "BitSerialMVAU_rtl"]
    assert len(engine) == 2 and all((out / l["weights_mem"]).is_file() for l in engine)
    w = np.load(out / engine[0]["weights"])
    assert w.shape == (16, 64) and set(np.unique(w)) == {-1, 1}
    gen = [p for p in (out / "codegen").rglob("*_wrapper.v")]
    assert len(gen) == 2 and "bitcycle_mvau" in gen[0].read_text()
    for f in (out / "codegen").rglob("*.*v"):  # memory images are named at the final location
        assert ".tmp-" not in f.read_text(), f
    assert len(list((out / "codegen").rglob("*_wrapper_weights.mem"))) == 2
    tcl = (out / "bd" / "bd.tcl").read_text()
    assert "processing_system7" in tcl and "axi_dma" in tcl and "xc7z020clg400-1" in tcl
    # bitstream: without Vitis/Vivado → exit 2, one line naming the tool and the project
    env_path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "vivado").exists())
    done = subprocess.run([sys.executable, "-m", "bitcycle.cli", "bitstream", *args], cwd=tmp_path,
                          env=dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}:{env_path}", PYTHONPATH=str(ROOT / "sw")),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert "vitis_hls not found" in line and str(out) in line
