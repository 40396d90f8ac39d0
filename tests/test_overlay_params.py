"""One source of the training overlay's build parameters: a compiled driver.json's
engine.rtl_parameters, the CONFIG values bd.tcl sets on the bitcycle_top cell and the parameters the
sim backend builds the Verilated top with are the same dict, holding every bitcycle_top parameter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bitcycle.errors import BitCycleError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    d = tmp_path_factory.mktemp("overlay")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sw"), PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "bitcycle.cli", "compile", "--model", "tfc", "--set", "in_features=64",
                           "--set", "width=16", "--set", "depth=1", "--check-images", "20",
                           "--out", str(d / "tiny")], cwd=d, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return d / "tiny"


def _engine_config(tcl: Path) -> dict[str, int]:
    """The bitcycle_top cell's parameters in the design bd.tcl builds, executed by the Vivado stand-in."""
    from bitcycle.compile.tclcheck import run_tcl

    return run_tcl(tcl)["module_parameters"]["bitcycle_top_0"]


def test_driver_json_bd_tcl_and_sim_build_agree(compiled):
    from bitcycle.driver.sim_backend import build_parameters
    from bitcycle.hwif.driver_json import load
    from bitcycle.hwif.top_params import module_parameters

    spec = load(compiled / "driver.json")
    params = spec.engine.rtl_parameters
    assert set(params) == set(module_parameters(ROOT / "hw" / "rtl" / "bitcycle_top.sv"))  # every parameter
    assert params["DATA_W"] == 64 == 8 * spec.engine.stream_bytes  # the 64-bit DMA of bd.tcl
    assert params["WMEM_DEPTH"] == spec.engine.weight_words
    assert _engine_config(compiled / "bd" / "bd.tcl") == params
    assert build_parameters(spec.engine) == params


def test_parameter_names_follow_the_rtl(tmp_path):
    from bitcycle.hwif.driver_json import EngineSpec
    from bitcycle.hwif.top_params import rtl_parameters

    top = (ROOT / "hw" / "rtl" / "bitcycle_top.sv").read_text()
    last = re.findall(r"parameter int (\w+ +=[^,\n]*)\n\) \(", top)[0]  # the list's last parameter
    changed = top.replace(last + "\n) (", last + ",\n  parameter int NEW_P = 0x1_0\n) (")
    assert changed != top
    (tmp_path / "bitcycle_top.sv").write_text(changed)
    params = rtl_parameters(EngineSpec(stream_bytes=8), tmp_path / "bitcycle_top.sv")
    assert params["NEW_P"] == 16 and params["DATA_W"] == 64 and list(params)[-1] == "NEW_P"
    (tmp_path / "bitcycle_top.sv").write_text(top.replace("parameter int PE         = 4", "parameter int PE = SIMD/4"))
    with pytest.raises(BitCycleError, match="PE defaults to 'SIMD/4', not an integer literal"):
        rtl_parameters(EngineSpec(), tmp_path / "bitcycle_top.sv")


def test_drifted_parameters_are_rejected(compiled, tmp_path):
    from bitcycle.hwif.driver_json import load

    d = json.loads((compiled / "driver.json").read_text())
    d["engine"]["rtl_parameters"]["WMEM_DEPTH"] = 256
    with pytest.raises(BitCycleError, match="WMEM_DEPTH=256 but the engine section gives 1024"):
        load(d)
    d["engine"]["rtl_parameters"]["WMEM_DEPTH"] = "1024"
    with pytest.raises(BitCycleError, match="rtl_parameters.WMEM_DEPTH must be an integer"):
        load(d)


def test_sim_build_rejects_parameters_of_another_rtl(compiled):
    from bitcycle.driver.sim_backend import build_parameters
    from bitcycle.hwif.driver_json import load

    spec = load(compiled / "driver.json")
    spec.engine.rtl_parameters["OLD_P"] = 1
    with pytest.raises(BitCycleError, match="re-run `bitcycle compile` for this source tree"):
        build_parameters(spec.engine)
