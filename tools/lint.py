"""`make lint`: every static check, one command, non-zero exit when any finds something.

  ruff       sw/ tests/ sim/ tools/ (the rules in pyproject.toml: pyflakes, pycodestyle errors, bugbear)
  mypy       the packages that run on the board: bitcycle.golden, bitcycle.hwif, bitcycle.driver
  verilator  --lint-only -Wall of every file in hw/rtl, one run per RTL top whose file list
             (bitcycle.hwif.rtl) no other top contains (lint_tops); the waivers
             (hw/regs/verilator_waivers.vlt) cover only the generated register block

tests/test_lint.py runs this (so `make test` fails on a finding) and shows each step catches a
planted one. `--only STEP` runs one step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

RUFF_PATHS = ("sw", "tests", "sim", "tools")
MYPY_PATHS = ("sw/bitcycle/golden", "sw/bitcycle/hwif", "sw/bitcycle/driver")
WAIVERS = "hw/regs/verilator_waivers.vlt"


def lint_tops() -> list[str]:
    """The RTL tops of bitcycle.hwif.rtl whose file list is not part of another top's: linting
    these lints every listed file, each in a real context (tests/test_lint.py: every hw/rtl file is listed)."""
    sys.path.insert(0, str(REPO / "sw"))
    from bitcycle.hwif.rtl import RTL_SOURCES

    sets = {top: set(files) for top, files in RTL_SOURCES.items()}
    return [top for top, files in sets.items() if not any(files < other for other in sets.values())]


def tool(name: str) -> str:
    """The venv's copy of a tool (make setup installs ruff, mypy and verilator there), else PATH's."""
    path = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        raise SystemExit(f"lint: {name} not found; run `make setup`")
    return path


def ruff(paths=RUFF_PATHS) -> list[str]:
    return [tool("ruff"), "check", "--no-cache", *map(str, paths)]


def mypy(paths=MYPY_PATHS) -> list[str]:
    return [tool("mypy"), "--config-file", str(REPO / "pyproject.toml"), *map(str, paths)]


def verilator(top: str, files: list[str] | None = None) -> list[str]:
    if files is None:
        sys.path.insert(0, str(REPO / "sw"))
        from bitcycle.hwif.rtl import rtl_sources

        files = [f"hw/rtl/{f}" for f in rtl_sources(top)]
    return [tool("verilator"), "--lint-only", "-Wall", WAIVERS, *files, "--top-module", top]


def steps() -> dict[str, list[list[str]]]:
    return {"ruff": [ruff()], "mypy": [mypy()], "verilator": [verilator(top) for top in lint_tops()]}


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["ruff", "mypy", "verilator"], help="run this step only")
    args = parser.parse_args(argv)
    failed = []
    for name, cmds in steps().items():
        if args.only and name != args.only:
            continue
        for cmd in cmds:
            done = run(cmd)
            label = name if name != "verilator" else f"verilator {cmd[-1]}"
            if done.returncode:
                failed.append(label)
                print(f"lint: {label}: FAILED\n{done.stdout}{done.stderr}".rstrip())
            else:
                print(f"lint: {label}: clean")
    if failed:
        print(f"lint: findings in {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
