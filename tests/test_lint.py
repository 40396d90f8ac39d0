"""`make lint` inside `make test`: the tree is clean under every step of tools/lint.py (ruff, mypy
on the board-side packages, Verilator -Wall on every hw/rtl file), and each step fails on a
planted finding — so a clean result means something."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bitcycle_lint", REPO / "tools" / "lint.py")
lint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lint)


@pytest.mark.parametrize("step", ["ruff", "mypy", "verilator"])
def test_tree_is_lint_clean(step):
    failures = []
    for cmd in lint.steps()[step]:
        done = lint.run(cmd)
        if done.returncode:
            failures.append(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    assert not failures, "\n".join(failures)


def test_every_rtl_file_is_linted():
    from bitcycle.hwif.rtl import rtl_sources

    tops = lint.lint_tops()
    # a module another top contains (the engine in bitcycle_top, the FIFO in bitcycle_mvau) is linted there
    assert {"bitcycle_top", "bitcycle_mvau"} <= set(tops) and not {"bitcycle_engine", "bitcycle_axis_fifo"} & set(tops)
    linted = {f for top in tops for f in rtl_sources(top)}
    on_disk = {p.name for p in (REPO / "hw" / "rtl").iterdir() if p.suffix in (".sv", ".svh", ".v")}
    assert on_disk - linted == set(), "list the file under its top in bitcycle.hwif.rtl.RTL_SOURCES"


def test_each_step_catches_a_planted_finding(tmp_path):
    py = tmp_path / "planted.py"
    py.write_text("import os\n\n\ndef f(x: int) -> str:\n    return x\n")  # F401 unused import; int is not str
    ruff = lint.run(lint.ruff([py]))
    assert ruff.returncode != 0 and "F401" in ruff.stdout, ruff.stdout
    mypy = lint.run(lint.mypy([py]))
    assert mypy.returncode != 0 and "Incompatible return value type" in mypy.stdout, mypy.stdout
    sv = tmp_path / "planted.sv"
    # an undriven, unread signal (not named *unused*: Verilator's default waiver pattern)
    sv.write_text("module planted (input logic a_i, output logic y_o);\n  logic spare;\n  assign y_o = a_i;\nendmodule\n")
    vl = lint.run(lint.verilator("planted", [str(sv)]))
    assert vl.returncode != 0 and "UNUSEDSIGNAL" in vl.stdout + vl.stderr, vl.stdout + vl.stderr
