"""The one way tests run the ``bitcycle`` command line: this checkout's sources, this venv's tools,
output captured, and a time-out generous enough for a loaded machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m bitcycle.cli ARGS`` in ``cwd``; the completed process, stdout and stderr as text."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sw"), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "bitcycle.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_exit_2(done: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert the command failed as bad input does: exit 2, one line on stderr holding every needle."""
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr[-3000:]
    for n in needles:
        assert n in err[0], err[0]
    return err[0]
