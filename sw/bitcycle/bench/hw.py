"""``bitcycle bench hw`` (``make bench-hw``): cycles per matrix of the engine RTL, measured in
Verilator, for each (mode, bits, M, K, N, PE, SIMD), against the bit-serial ideal

    ideal = bits · ⌈rows/PE⌉ · ⌈len/SIMD⌉ · vectors      (one plane-chunk per cycle)

which is bits·⌈M/PE⌉·⌈K/SIMD⌉·N for forward and backward-data (W is [M, K]) and
bits·⌈K/PE⌉·⌈N/SIMD⌉·M for backward-weight (plus streaming sign(x) [K, N] in first). The fixed
latency L is measured on the smallest job (bits = 1, M = PE, K = SIMD, N = 1, ideal 1 cycle);
every point is checked against cycles ≤ 1.05·ideal + L (+ the sign(x) words in backward-weight).
The exact model also counts the pipeline fill, the first input vector that must arrive before the
array starts (bits·⌈len/chunk⌉ words; later vectors load while the array works):
model = ideal + bits·⌈len/chunk⌉ + L (+ sign(x) words). The shapes keep that fill under 5 %.

Output-bound shapes (a reduction per output group shorter than the group's drain: bits·⌈len/chunk⌉
< ⌈lanes/per⌉ + 3 cycles, per = results per stream word) run twice: with int32 results (one per
32 bits: the reference that misses the bound, not counted in ``all_within_bound``) and packed as
the driver requests them (ACC_BITS from the accumulator rule, the narrowest RES_W that holds it).
Writes build/bench/hw.json, build/bench/hw.md and build/bench/hw_cycles_vs_bits.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bitcycle.bench.provenance import REPO, provenance
from bitcycle.errors import BitCycleError
from bitcycle.golden import stream as st
from bitcycle.golden.accwidth import min_acc_bits
from bitcycle.golden.cycles import array_cycles, signx_tiles
from bitcycle.hwif.rtl import rtl_sources

OUT = REPO / "build" / "bench"
MODE_NAMES = {st.MODE_FORWARD: "forward", st.MODE_BACKWARD_DATA: "backward-data",
              st.MODE_BACKWARD_WEIGHT: "backward-weight"}
BITS = (1, 2, 4, 8, 12, 16)
OUTPUT_BOUND_BITS = (1, 2, 4)  # beyond these the reduction outlasts even the int32 drain

# engine builds (pipeline registers on, as bitcycle_top builds it) and the layer shapes run on each; shapes keep the reduction at least PE + a few
# chunks long so that the int32 output stream (one value per cycle) keeps up with the array.
CONFIGS = {
    "4x16": dict(params=dict(PE=4, SIMD=16, ACC_BITS=32, DATA_W=32, THR_MAX=1, WMEM_DEPTH=512, AMEM_DEPTH=512,
                             TMEM_DEPTH=16, MAX_CHUNKS=64, READ_REG=1, POP_REG=1),
                 shapes={st.MODE_FORWARD: (64, 256, 8), st.MODE_BACKWARD_DATA: (256, 64, 8),
                         st.MODE_BACKWARD_WEIGHT: (8, 64, 256)},
                 # reduction 4 chunks (forward, backward-weight: 4 lanes out) or 8 (backward-data: 16 out)
                 output_bound={st.MODE_FORWARD: (64, 64, 16), st.MODE_BACKWARD_DATA: (32, 64, 16),
                               st.MODE_BACKWARD_WEIGHT: (64, 64, 64)}),
    "16x32": dict(params=dict(PE=16, SIMD=32, ACC_BITS=32, DATA_W=64, THR_MAX=1, WMEM_DEPTH=256, AMEM_DEPTH=256,
                              TMEM_DEPTH=16, MAX_CHUNKS=64, READ_REG=1, POP_REG=1),
                  shapes={st.MODE_FORWARD: (64, 1024, 16), st.MODE_BACKWARD_DATA: (640, 64, 16),
                          st.MODE_BACKWARD_WEIGHT: (16, 64, 1024)},
                  output_bound={st.MODE_FORWARD: (64, 192, 16), st.MODE_BACKWARD_DATA: (128, 64, 16),
                                st.MODE_BACKWARD_WEIGHT: (64, 64, 192)}),
}


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


ideal_cycles = array_cycles  # the array's cycles for a job (golden's cycle model), no latency or loads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configs", nargs="+", default=sorted(CONFIGS), choices=sorted(CONFIGS),
                        help="engine builds (PExSIMD) to measure")
    parser.add_argument("--bits", nargs="+", type=int, default=list(BITS), help="bit-widths to sweep")
    parser.add_argument("--out", type=Path, default=OUT, help="output directory")


def _run_config(name: str, cfg: dict, bits_list: list[int]) -> dict:
    sys.path.insert(0, str(REPO / "sim"))
    import rtl_runner

    params = cfg["params"]
    pe, simd = params["PE"], params["SIMD"]
    points = [dict(mode=st.MODE_FORWARD, bits=1, m=pe, k=simd, n=1, latency_probe=True)]
    for mode, (m, k, n) in cfg["shapes"].items():
        points += [dict(mode=mode, bits=b, m=m, k=k, n=n, set="compute-bound", acc_bits=params["ACC_BITS"],
                        res_bits=32) for b in bits_list]
    for mode, (m, k, n) in cfg["output_bound"].items():
        red_len = {st.MODE_FORWARD: k, st.MODE_BACKWARD_DATA: m, st.MODE_BACKWARD_WEIGHT: n}[mode]
        for b in OUTPUT_BOUND_BITS:
            acc_bits = min_acc_bits(red_len, b)  # the driver's choice (driver.planning.result_widths)
            points += [dict(mode=mode, bits=b, m=m, k=k, n=n, set="output-bound int32", acc_bits=params["ACC_BITS"],
                            res_bits=32),
                       dict(mode=mode, bits=b, m=m, k=k, n=n, set="output-bound packed", acc_bits=acc_bits,
                            res_bits=st.result_bits(st.OUT_RAW, acc_bits))]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        wall0, cpu0 = time.perf_counter(), time.process_time()
        rtl_runner.run("bitcycle_engine", rtl_sources("bitcycle_engine"), "bitcycle.bench.hw_cocotb", parameters=params,
                       tag=f"bench{name}", quiet=True,
                       extra_env={"BITCYCLE_BENCH_POINTS": json.dumps(points), "BITCYCLE_BENCH_OUT": str(out)})
        run_wall = time.perf_counter() - wall0
        data = json.loads(out.read_text())
    probe = data["points"][0]
    latency = probe["cycles"] - ideal_cycles(st.MODE_FORWARD, 1, pe, simd, 1, pe, simd)
    geo = st.Geometry(pe=pe, simd=simd, data_width=params["DATA_W"], thr_max=params["THR_MAX"])
    rows = []
    for p in data["points"][1:]:
        ideal = ideal_cycles(p["mode"], p["bits"], p["m"], p["k"], p["n"], pe, simd)
        load = 0
        if p["mode"] == st.MODE_BACKWARD_WEIGHT:
            load = signx_tiles(p["k"], p["n"], pe, simd) * geo.tile_words  # sign(x) words streamed first
        bound = 1.05 * ideal + latency + load
        chunk = pe if p["mode"] == st.MODE_BACKWARD_DATA else simd
        red_len = {st.MODE_FORWARD: p["k"], st.MODE_BACKWARD_DATA: p["m"], st.MODE_BACKWARD_WEIGHT: p["n"]}[p["mode"]]
        model = ideal + p["bits"] * _ceil(red_len, chunk) + latency + load
        rows.append({**p, "config": name, "pe": pe, "simd": simd, "data_width": params["DATA_W"],
                     "mode_name": MODE_NAMES[p["mode"]], "ideal": ideal, "signx_words": load,
                     "bound": bound, "within_bound": p["cycles"] <= bound, "model": model,
                     "claimed": p["set"] != "output-bound int32",
                     "model_error": p["cycles"] - model,
                     "ratio": p["cycles"] / ideal, "over_ideal": p["cycles"] - ideal - load})
    total = data["total"]
    return {"config": name, "params": params, "latency_cycles": latency, "points": rows,
            "sim": {**total, "cycles_per_s_wall": total["sim_cycles"] / total["wall_s"],
                    "cycles_per_s_cpu": total["sim_cycles"] / max(total["cpu_s"], 1e-9),
                    "build_and_run_wall_s": run_wall, "parent_cpu_s": time.process_time() - cpu0}}


def _proportionality(rows: list[dict]) -> dict:
    """Least-squares cycles = a·bits + c per (config, mode); max relative residual."""
    out = {}
    keys = sorted({(r["config"], r["mode_name"], r["set"]) for r in rows})
    for key in keys:
        pts = [(r["bits"], r["cycles"]) for r in rows if (r["config"], r["mode_name"], r["set"]) == key]
        nb = len(pts)
        if nb < 2:
            continue
        mx = sum(b for b, _ in pts) / nb
        my = sum(c for _, c in pts) / nb
        a = sum((b - mx) * (c - my) for b, c in pts) / sum((b - mx) ** 2 for b, _ in pts)
        c0 = my - a * mx
        resid = max(abs(c - (a * b + c0)) / c for b, c in pts)
        out[f"{key[0]} {key[1]} ({key[2]})"] = {"cycles_per_bit": a, "intercept": c0, "max_rel_residual": resid}
    return out


def _markdown(result: dict) -> str:
    lines = ["| config | mode | shapes | results | bits | M | K | N | cycles | ideal | cycles/ideal | ≤ 1.05·ideal + L "
             "| model | cycles − model |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|"]
    for r in result["points"]:
        lines.append(f"| {r['config']} | {r['mode_name']} | {r['set']} | int{r['res_bits']} (ACC_BITS {r['acc_bits']}) | "
                     f"{r['bits']} | {r['m']} | {r['k']} | {r['n']} | "
                     f"{r['cycles']} | {r['ideal']} | {r['ratio']:.3f} | {'yes' if r['within_bound'] else 'NO'} | "
                     f"{r['model']} | {r['model_error']} |")
    lines += ["", "| config | fixed latency L (cycles) | Verilator+cocotb speed (cycles/s wall) | (cycles/s CPU) |",
              "|---|---:|---:|---:|"]
    for c in result["configs"]:
        lines.append(f"| {c['config']} (DATA_W={c['params']['DATA_W']}) | {c['latency_cycles']} | "
                     f"{c['sim']['cycles_per_s_wall']:,.0f} | {c['sim']['cycles_per_s_cpu']:,.0f} |")
    lines += ["", "| config mode | cycles per bit (fit) | intercept | max relative residual |", "|---|---:|---:|---:|"]
    for key, v in result["proportionality"].items():
        lines.append(f"| {key} | {v['cycles_per_bit']:.1f} | {v['intercept']:.1f} | {v['max_rel_residual']:.4f} |")
    return "\n".join(lines) + "\n"


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = sorted({(r["config"], r["mode_name"]) for r in result["points"] if r["set"] == "compute-bound"})
    for key in keys:
        pts = sorted((r["bits"], r["cycles"], r["ideal"]) for r in result["points"]
                     if (r["config"], r["mode_name"]) == key and r["set"] == "compute-bound")
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{key[0]} {key[1]}")
        ax.plot([p[0] for p in pts], [p[2] for p in pts], ":", color=line.get_color())
    ax.set_xlabel("bits (run-time register)")
    ax.set_ylabel("cycles per matrix (Verilator)")
    ax.set_title("BitCycle engine: cycles vs bit-width (dotted: bits·⌈rows/PE⌉·⌈len/SIMD⌉·vectors)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    bad = [b for b in args.bits if not 1 <= b <= 16]
    if bad:
        raise BitCycleError(f"--bits {bad[0]} is outside 1..16: the engine's BITS register range")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SIM", "verilator")
    if os.environ["SIM"] != "verilator":
        raise BitCycleError("bench hw measures on Verilator: unset SIM (or SIM=verilator)")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    configs = []
    for name in tqdm(args.configs, desc="bench hw (Verilator builds)", unit="config"):
        configs.append(_run_config(name, CONFIGS[name], sorted(set(args.bits))))
    rows = [r for c in configs for r in c["points"]]
    result = {"provenance": provenance(), "bench": "hw", "host": platform.node(), "configs": configs, "points": rows,
              "all_within_bound": all(r["within_bound"] for r in rows if r["claimed"]),
              "int32_output_bound_within": sum(r["within_bound"] for r in rows if not r["claimed"]),
              "int32_output_bound_points": sum(not r["claimed"] for r in rows),
              "proportionality": _proportionality(rows),
              "wall_s": time.perf_counter() - wall0, "cpu_s_parent": time.process_time() - cpu0}
    (args.out / "hw.json").write_text(json.dumps(result, indent=1))
    md = _markdown(result)
    (args.out / "hw.md").write_text(md)
    _plot(result, args.out / "hw_cycles_vs_bits.png")
    print(md)
    print(f"wrote {args.out / 'hw.json'}, hw.md, hw_cycles_vs_bits.png")
    return 0 if result["all_within_bound"] else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
