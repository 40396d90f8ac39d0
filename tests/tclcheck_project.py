"""Shared by the Tcl stand-in tests: a tiny compiled project (the real `bitcycle compile`), copies of
its bd/ and rtl/ to mutate, and the engine the overlay's recorded parameters describe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tfc", "--set", "in_features=64", "--set", "width=16", "--set", "depth=1", "--check-images", "4"]


_COMPILED: dict[str, Path] = {}


def compiled_once(tmp_path_factory) -> Path:
    """The tiny project, compiled once per session for every test module that needs it."""
    if "tiny" not in _COMPILED:
        _COMPILED["tiny"] = compile_tiny(tmp_path_factory.mktemp("tclcheck") / "tiny")
    return _COMPILED["tiny"]


def compile_tiny(out: Path, part: str = "pynq-z2") -> Path:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sw"), PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "bitcycle.cli", "compile", *TINY, "--part", part, "--out", str(out)],
                          cwd=out.parent, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def copy_project(project: Path, dest: Path) -> Path:
    """bd/ and rtl/ of ``project`` under ``dest`` (bd.tcl finds rtl/ relative to itself)."""
    for sub in ("bd", "rtl"):
        shutil.copytree(project / sub, dest / sub)
    return dest / "bd" / "bd.tcl"


def mutate(tcl: Path, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` in ``tcl``; the 1-based line it is on."""
    text = tcl.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {tcl}"
    tcl.write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


def line_of(tcl: Path, needle: str) -> int:
    lines = tcl.read_text().splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if needle in line]
    assert len(hits) == 1, f"{needle!r} on lines {hits} of {tcl}"
    return hits[0]


def engine_of(params: dict):
    """The EngineSpec of an overlay built with the bitcycle_top parameters ``params``."""
    from bitcycle.hwif.driver_json import EngineSpec

    return EngineSpec(pe=params["PE"], simd=params["SIMD"], acc_bits=params["ACC_BITS"],
                      stream_bytes=params["DATA_W"] // 8, thr_max=params["THR_MAX"],
                      weight_words=params["WMEM_DEPTH"], act_tiles=params["AMEM_DEPTH"],
                      max_chunks=params["MAX_CHUNKS"], rtl_parameters=dict(params))
