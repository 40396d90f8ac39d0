"""The compile CLI: a complete build directory, driver.json accepted by the driver,
`bitcycle bitstream` without Vitis/Vivado → exit 2 with one line, a missing checkpoint → exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_run import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_missing_checkpoint_exits_2_with_one_line(tmp_path):
    done = run_cli("compile", "--checkpoint", str(tmp_path / "nope"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "bitcycle train" in done.stderr
    assert not (tmp_path / "build").exists()


def test_compile_cli_writes_complete_build_dir_and_bitstream_exits_2(tmp_path):
    out = tmp_path / "build" / "tiny"
    args = ("--model", "tfc", "--set", "in_features=64", "--set", "width=16", "--set", "depth=1", "--check-images", "100",
            "--grad-bits", "cosine:2-6x4", "--quiet", "--out", str(out))
    done = run_cli("compile", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note:" not in done.stderr and "compile:" not in done.stderr  # new spellings: no note; --quiet: no bar
    for f in ("qonnx.onnx", "model.onnx", "resources.json", "resources.md", "dataflow.json", "driver.json",
              "compile.json", "bd/bd.tcl", "finn_build.py", "params.npz"):
        assert (out / f).is_file(), f
    assert not list(tmp_path.glob("build/.tiny.tmp-*"))
    summary = json.loads((out / "compile.json").read_text())
    assert summary["images_checked"] == 100 and summary["stages"]["engine"]["checked"] == 100
    from bitcycle.hwif.driver_json import load

    spec = load(out / "driver.json")  # the driver's own validator accepts it
    assert [l.in_bits for l in spec.layers] == [8, 1] and spec.layers[-1].act == "none"
    assert spec.grad_bits == {"min": 2, "max": 6}  # the range of the --grad-bits schedule
    saved = json.loads((out / "compile_config.json").read_text())
    assert (saved["model_cfg"], saved["grad_bits"], saved["grad_range"]) == (
        '{"in_features": 64, "width": 16, "depth": 1}', "cosine:2-6x4", None)
    flow = json.loads((out / "dataflow.json").read_text())
    engine = [l for l in flow["layers"] if l["op_type"] == "BitSerialMVAU_rtl"]
    assert len(engine) == 2 and all((out / m).is_file() for l in engine for m in l["weights_mem"])
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


# ---------------------------------------------------------------- one vocabulary (cliutil)
def _compile_config(*argv):
    import argparse

    from bitcycle.compile.commands import add_compile_arguments
    from bitcycle.compile.config import config_from_args

    parser = argparse.ArgumentParser()
    add_compile_arguments(parser)
    return config_from_args(parser.parse_args(["--model", "tfc", *argv]))


def test_set_is_the_model_option_spelling_and_model_cfg_an_alias_with_a_note(capsys):
    new = _compile_config("--set", "in_features=64", "--set", "width=16")
    assert new.model_options() == {"in_features": 64, "width": 16}
    assert "note:" not in capsys.readouterr().err
    old = _compile_config("--model-cfg", '{"in_features": 64, "width": 16}')
    assert old.model_options() == new.model_options()
    assert capsys.readouterr().err == "note: --model-cfg is deprecated; use --set KEY=VALUE\n"
    # both spellings together: command-line order, the later one wins
    both = _compile_config("--set", "width=8", "--model-cfg", '{"width": 16, "depth": 1}', "--set", "depth=2")
    assert both.model_options() == {"width": 16, "depth": 2}


def test_grad_bits_is_a_schedule_and_its_range_goes_to_driver_json(capsys):
    assert _compile_config().grad_bits_range() == (2, 8)  # neither given: 2-8 as before
    assert _compile_config("--grad-bits", "cosine:3-7x4").grad_bits_range() == (3, 7)
    assert _compile_config("--grad-bits", "fixed:5").grad_bits_range() == (5, 5)
    assert _compile_config("--grad-range", "1-12").grad_bits_range() == (1, 12)
    assert _compile_config("--grad-bits", "triangle:4-8x2", "--grad-range", "2-10").grad_bits_range() == (2, 10)
    assert "note:" not in capsys.readouterr().err


def test_grad_bits_as_a_range_is_the_old_spelling_of_grad_range_with_a_note(capsys):
    cfg = _compile_config("--grad-bits", "3-9")
    assert (cfg.grad_bits, cfg.grad_range, cfg.grad_bits_range()) == (None, "3-9", (3, 9))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: --grad-bits 3-9 (a range) in compile is deprecated; "
                                                    "use --grad-range 3-9")


def test_compile_config_json_written_with_grad_bits_as_a_range_still_loads(tmp_path, capsys):
    from bitcycle.compile.config import CompileConfig

    old = CompileConfig(model="tfc").to_dict()
    del old["grad_range"]
    old["grad_bits"] = "2-6"  # what compile_config.json held when --grad-bits was a range
    (tmp_path / "compile_config.json").write_text(json.dumps(old))
    cfg = CompileConfig.load(tmp_path)
    assert (cfg.grad_bits, cfg.grad_range, cfg.grad_bits_range()) == (None, "2-6", (2, 6))
    assert "note: --grad-bits 2-6 (a range) in compile is deprecated" in capsys.readouterr().err
    # a schedule given over the file replaces its range; a range given over it replaces its schedule
    CompileConfig(model="tfc", grad_bits="cosine:2-8x4", grad_range="2-10").save(tmp_path / "compile_config.json")
    assert _compile_config("--config", str(tmp_path)).grad_bits_range() == (2, 10)
    assert _compile_config("--config", str(tmp_path), "--grad-range", "1-4").grad_bits_range() == (1, 4)
    assert _compile_config("--config", str(tmp_path), "--grad-bits", "fixed:12").grad_bits_range() == (12, 12)


@pytest.mark.parametrize("argv,message", [
    (("--grad-bits", "fp32"), "--grad-bits fp32 has no meaning on the engine"),
    (("--grad-bits", "cosine:2-8"), "unknown grad-bits spec"),
    (("--grad-bits", "triangle:4-8x2", "--grad-range", "3-7"), "needs 4-8 bits but --grad-range is 3-7"),
    (("--grad-bits", "fixed:12", "--bits-max", "8"), "gradient bits 12-12 must satisfy 1 <= LO <= HI <= --bits-max 8"),
    (("--grad-range", "8-2"), "gradient bits 8-2 must satisfy"),
    (("--grad-range", "2..8"), "--grad-range must look like 2-8"),
    (("--grad-bits", "2-8", "--grad-range", "2-8"), "give the range once as --grad-range"),
])
def test_bad_gradient_bits_are_one_line(argv, message):
    from bitcycle.errors import BitCycleError

    with pytest.raises(BitCycleError) as err:
        _compile_config(*argv)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_export_takes_set_and_model_cfg_with_a_note(tmp_path):
    new = run_cli("export", "--model", "tfc", "--set", "in_features=64", "--set", "width=8", "--set", "depth=1",
               "--out", str(tmp_path / "new"), cwd=tmp_path)
    old = run_cli("export", "--model", "tfc", "--model-cfg", '{"in_features": 64, "width": 8, "depth": 1}',
               "--out", str(tmp_path / "old"), cwd=tmp_path)
    assert new.returncode == 0 and old.returncode == 0, new.stderr[-1000:] + old.stderr[-1000:]
    assert "note:" not in new.stderr
    assert "note: --model-cfg is deprecated; use --set KEY=VALUE" in old.stderr
    import onnx

    def layout(d):  # the weights are random (untrained): compare what the options decide
        g = onnx.load(str(tmp_path / d / "qonnx.onnx")).graph
        return [n.op_type for n in g.node], sorted((i.name, tuple(i.dims)) for i in g.initializer)

    assert layout("new") == layout("old") and ("BipolarQuant_0_param0", (8, 64)) in layout("new")[1]
    bad = run_cli("export", "--model", "tfc", "--model-cfg", "{width: 8}", "--out", str(tmp_path / "bad"), cwd=tmp_path)
    assert bad.returncode == 2 and "is not JSON" in bad.stderr and "--set KEY=VALUE" in bad.stderr
